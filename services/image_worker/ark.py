"""Volcengine Ark, the official Seedream API: one synchronous, paid request per picture.

`POST {ARK_BASE_URL}/images/generations` with `Authorization: Bearer <ARK_API_KEY>`;
errors are real HTTP statuses with `{"error": {"code", "message", "param", "type"}}`.

Written on httpx rather than the openai SDK (whose `images.generate` could call it):
what a failure costs depends on whether the request reached Ark, and httpx says so
(a refused or timed-out connect, nothing sent; a read timeout or a dropped
connection, the request was sent and Ark may finish and bill the picture). The SDK
folds both into one connection error, and would add retries of its own.

Never a second paid generation for one picture by itself: a request that was sent
and got no answer fails as `image_timeout`, not retryable; the reader may redraw.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import httpx

from services.common.metrics import UPSTREAM_SECONDS
from services.image_worker.config import ARK_MAX_PIXELS, ARK_MIN_PIXELS, ARK_SCALES
from services.image_worker.provider import Checks, ImageError, Tally

log = logging.getLogger(__name__)

KEY_FIX = (
    "set ARK_API_KEY to an API key from the Ark console (console.volcengine.com/ark, API Key management)"
)
MODEL_FIX = (
    "activate the model in the Ark console (开通管理) or set ARK_IMAGE_MODEL to a Seedream model "
    "or endpoint id (ep-...) your account can use"
)
CREDIT_FIX = "top up the Volcengine account (费用中心) or raise the limit in the Ark console"
# How long a readiness answer is kept: /readyz is polled often, and every probe counts
# against the account's requests per minute (it never draws, so it costs nothing).
CHECK_EVERY = 60.0


def size_for(ratio: str, scale: str) -> str:
    """The WIDTHxHEIGHT Ark is asked for: the page's shape at the configured scale.

    Ark's `2K` alone lets the model choose the shape; our pages need theirs. A scale
    (1K/2K/4K) gives the area of a square of that side, an explicit WIDTHxHEIGHT its
    own area; the sides are multiples of 16 and the area stays within Ark's limits.
    """
    w_part, _, h_part = ratio.partition(":")
    rw, rh = float(w_part), float(h_part)
    if scale in ARK_SCALES:
        area = float(ARK_SCALES[scale] ** 2)
    else:
        given_w, _, given_h = scale.partition("x")
        area = float(int(given_w) * int(given_h))
    area = min(max(area, ARK_MIN_PIXELS), ARK_MAX_PIXELS)
    height = math.sqrt(area * rh / rw)
    width = height * rw / rh
    # Down to multiples of 16 keeps the area under Ark's maximum; up when that fell
    # under its minimum.
    w, h = int(width // 16) * 16, int(height // 16) * 16
    if w * h < ARK_MIN_PIXELS:
        w, h = math.ceil(width / 16) * 16, math.ceil(height / 16) * 16
    return f"{w}x{h}"


def classify(status: int, body: Any) -> ImageError:
    """Our error for an Ark answer that is not a picture (any status but 200 with one)."""
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    code = str(err.get("code") or "")
    param = str(err.get("param") or "")
    said = f"{status} {code or 'no error code'}: {str(err.get('message') or '')[:160]}".strip()
    if code == "ContentSecurityDetectionError":  # the checker itself failed, not our prompt
        return ImageError("image_failed", f"Ark's content check failed ({said}); trying again later", True)
    if "RiskDetection" in code or "SensitiveContent" in code:
        return ImageError(
            "image_content_policy", f"Ark refused the picture by content policy ({said})", policy=True
        )
    if status == 401 or code == "AuthenticationError":
        return ImageError("image_auth", f"Ark refused ARK_API_KEY ({said}): {KEY_FIX}")
    if code == "AccountOverdueError":
        return ImageError("image_no_credits", f"the Volcengine account is overdue ({said}): {CREDIT_FIX}")
    if code in {"QuotaExceeded", "SetLimitExceeded"} or code.startswith("QuotaExceeded"):
        return ImageError(
            "image_no_credits", f"Ark's quota for this account is used up ({said}): {CREDIT_FIX}"
        )
    if code == "InvalidEndpoint.ClosedEndpoint":
        return ImageError(
            "image_failed", f"the Ark endpoint is closed for now ({said}); check ARK_IMAGE_MODEL", True
        )
    if status in {403, 404} or code.startswith(("ModelNotOpen", "InvalidEndpoint", "AccessDenied")):
        return ImageError("image_config", f"Ark cannot use ARK_IMAGE_MODEL ({said}): {MODEL_FIX}")
    if status == 429:
        return ImageError("image_failed", f"Ark's rate limit ({said}); trying again later", True)
    if status >= 500:
        return ImageError("image_failed", f"Ark failed ({said}); trying again later", True)
    if status == 400 and param.startswith("image"):
        # The character sheet was refused (too large, unreadable): later attempts try
        # it again and the last one draws from the page's text (see the illustrator).
        return ImageError("image_failed", f"Ark refused the character sheet ({said})", True)
    if status == 400:
        variable = {"size": "ARK_IMAGE_SIZE", "model": "ARK_IMAGE_MODEL"}.get(param, "the ARK_* settings")
        return ImageError("image_config", f"Ark rejected a parameter ({said}): check {variable}")
    return ImageError("image_failed", f"Ark answered HTTP {said}")


def picture_url(body: Any) -> str | ImageError:
    """The first picture's URL of a 200 answer, or why there is none."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data:
        return ImageError("image_failed", "Ark answered 200 without a picture", True)
    first = data[0] if isinstance(data[0], dict) else {}
    if isinstance(first.get("error"), dict):  # one picture of a set refused on its own
        return classify(400, {"error": first["error"]})
    url = first.get("url")
    if not isinstance(url, str) or not url:
        return ImageError("image_failed", "Ark answered 200 without a picture URL", True)
    return url


class Ark:
    name = "ark"

    def __init__(self, *, base_url: str, api_key: str, model: str, size: str, timeout: float) -> None:
        self.url = f"{base_url}/images/generations"
        self.model = model
        self.size = size
        self._key = api_key
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=20, keepalive_expiry=4.0),
            headers={"Authorization": f"Bearer {api_key}"},
        )
        self._check: tuple[float, str] | None = None
        # A quota or balance refusal seen while drawing, until a picture is drawn again.
        self._billing: str | None = None

    async def start(self) -> None:
        """Nothing to start: the key is checked when /readyz asks."""

    async def close(self) -> None:
        await self.http.aclose()

    async def draw(self, *, prompt: str, ratio: str, reference: str | None, tally: Tally) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "size": size_for(ratio, self.size),
            "response_format": "url",
            "watermark": False,
            "sequential_image_generation": "disabled",
        }
        if reference is not None:
            body["image"] = reference
        started = time.monotonic()
        outcome = "ok"
        try:
            return await self._post(body, tally)
        except ImageError as err:
            outcome = err.code
            raise
        finally:
            UPSTREAM_SECONDS.labels("ark", outcome).observe(time.monotonic() - started)

    async def _post(self, body: dict[str, Any], tally: Tally) -> str:
        try:
            resp = await self.http.post(self.url, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Ark: nothing to pay for, safe to try again.
            raise ImageError(
                "image_failed", f"Ark unreachable at ARK_BASE_URL ({type(exc).__name__})", True
            ) from None
        except (httpx.WriteError, httpx.WriteTimeout) as exc:
            # The request never arrived whole, so Ark cannot have started a picture.
            raise ImageError(
                "image_failed", f"sending the request to Ark failed ({type(exc).__name__})", True
            ) from None
        except httpx.TransportError as exc:
            tally.calls += 1
            raise ImageError(
                "image_timeout",
                f"no answer from Ark after the request was sent ({type(exc).__name__}); Ark may still "
                "finish and bill this picture, so it is not asked for again automatically",
            ) from None
        tally.calls += 1
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if resp.status_code == 200:
            found = picture_url(answer)
            if isinstance(found, str):
                self._billing = None
                self._remember("ok")
                return found
            raise found
        err = classify(resp.status_code, answer)
        if err.code in {"image_auth", "image_config", "image_no_credits"}:
            self._remember(err.message)
        if err.code == "image_no_credits":
            # The no-prompt probe cannot see quota or balance: keep saying so until a
            # picture is drawn again.
            self._billing = err.message
        raise err

    async def readiness(self) -> Checks:
        now = time.monotonic()
        if self._check is None or now - self._check[0] > CHECK_EVERY:
            self._remember(await self.check())
        assert self._check is not None
        said = self._check[1]
        if self._billing and (said == "ok" or said.startswith("ok ")):
            said = self._billing
        return {"ark": said}

    def _remember(self, verdict: str) -> None:
        self._check = (time.monotonic(), verdict)

    async def check(self) -> str:
        """Is the key accepted and the model usable? Asked without drawing (nothing billed).

        A request without a prompt cannot be drawn: Ark authenticates it, finds the
        model, then rejects the missing parameter with 400. That 400 proves the key.
        """
        return verdict(*await probe(self.http, self.url, self.model))


async def probe(http: httpx.AsyncClient, url: str, model: str) -> tuple[int | None, Any, str]:
    """(status, body, transport error) of the no-prompt request; status None when unreachable."""
    try:
        resp = await http.post(url, json={"model": model}, timeout=10.0)
    except httpx.HTTPError as exc:
        return None, None, type(exc).__name__
    try:
        body = resp.json()
    except ValueError:
        body = None
    return resp.status_code, body, ""


def verdict(status: int | None, body: Any, transport: str) -> str:
    """The readiness line for a probe's answer: "ok" or what is wrong and how to fix it."""
    if status is None:
        return f"unreachable at ARK_BASE_URL ({transport}): check ARK_BASE_URL and the network"
    if status == 400:
        code = _code(body)
        if code.startswith("MissingParameter"):
            return "ok"  # the missing prompt, and only that: key and model are fine
        return classify(400, body).message
    err = classify(status, body)
    if err.code == "image_auth":
        return f"the key was refused ({status}): {KEY_FIX}"
    if err.code == "image_config":
        return f"the model was refused ({status}): {MODEL_FIX}"
    if err.code == "image_no_credits":
        return err.message
    if status == 429:
        return "ok (rate limited right now)"
    return f"Ark answers HTTP {status}: {err.message}"


def _code(body: Any) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    return str(err.get("code") or "") if isinstance(err, dict) else ""
