"""The jimeng-api provider: every error is HTTP 200 with a `code`, so the body decides.

What the real server does shapes this client (docs/upstreams.md):
- It never stops a generation whose client left, and charges for it. So a request
  that timed out or lost its connection after it was sent is never sent again by
  itself: the picture fails as `image_timeout` and the reader may ask for a redraw.
  Only a request that never reached jimeng-api (connection refused) is tried again.
- `/token/check` says `live: false` for ANY failure, its own outage included, so it
  never marks an id dead. Ids are judged by what proves something: -2002 from a real
  call, or `/token/points` (-2002: expired; 0 credits: none left; -1000 after ~15 s:
  jimeng-api cannot reach jimeng, which says nothing about the ids).
- A -1000 that comes back at once is jimeng-api's own validation (a ratio, a model a
  region id cannot use): a configuration error, not tried again, named with the
  variable to change. One that takes seconds is an outage, tried again later.

Session ids are used in turn, one per request (jimeng-api itself would pick one at
random from a comma list, and one dead id would give random failures). An id that
answers "expired" or "no credits" is set aside; the request goes on with the next
one, and a watcher gives set-aside ids back when `/token/points` shows them usable;
the ids and their watcher are in jimeng_sessions.py, this module is the HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

import httpx

from services.common.metrics import UPSTREAM_SECONDS
from services.image_worker.jimeng_sessions import (
    EXPIRED,
    NO_CREDITS,
    POINTS_TIMEOUT,
    REGION,
    SESSION_CHECK_EVERY,
    Points,
    SessionPool,
    SessionWatch,
    read_points,
)
from services.image_worker.provider import Checks, ImageError, Tally

# Imported from here by the worker, the doctor and tests: the provider's whole surface.
__all__ = [
    "INSTANT",
    "NO_CREDITS",
    "POINTS_TIMEOUT",
    "Jimeng",
    "Points",
    "SessionPool",
    "classify",
    "read_points",
    "single_picture",
]

log = logging.getLogger(__name__)

# A -1000 faster than this is jimeng-api refusing the request itself (it validates in
# milliseconds); the real server needs ~15 s (4 tries, 5 s apart) to give up on an
# unreachable upstream. A slow validation is taken for an outage: tried again, no harm.
INSTANT = 1.0
READY_WAITS_FOR_CHECK = 5.0
# Words that switch jimeng-4.x into multi-picture mode (one prompt, several pictures).
_REGION_ID = re.compile(r"^(?:[a-z0-9]+://[^@]*@)?(us|hk|jp|sg)-", re.IGNORECASE)
_MULTI_PICTURE = re.compile(r"绘本|故事|连续|\d+\s*张")
_MULTI_PICTURE_INSTEAD = {"绘本": "插画", "故事": "场景", "连续": ""}


def single_picture(prompt: str) -> str:
    """The prompt without the words that would make jimeng draw a set of pictures."""
    return _MULTI_PICTURE.sub(lambda m: _MULTI_PICTURE_INSTEAD.get(m.group(0), ""), prompt)


def _set_aside_for(err: ImageError, sid: str) -> str:
    """Why an id must not draw again after this answer ("" when the answer is not the id's)."""
    if err.code == "image_session_expired":
        return EXPIRED
    if err.code == "image_no_credits":
        return NO_CREDITS
    if err.code == "image_config" and "国际版不支持模型" in err.message and _REGION_ID.match(sid):
        return REGION  # other ids (of the mainland site) may still draw with this model
    return ""


def config_hint(message: str) -> str:
    """Which setting an instant -1000 points at."""
    if "国际版不支持模型" in message:
        return (
            "JIMENG_MODEL is not offered to region session ids (us-...): set JIMENG_MODEL to one the "
            "message lists, or use a session id of the mainland site"
        )
    if "比例" in message:
        return "set JIMENG_RATIO to one the message lists"
    if "分辨率" in message:
        return "set JIMENG_RESOLUTION to 1k, 2k or 4k"
    if "Route" in message:
        return "JIMENG_API_URL answers but is not jimeng-api (or an older version): check it"
    return "check JIMENG_MODEL, JIMENG_RATIO and JIMENG_RESOLUTION against the jimeng-api version in use"


def classify(body: Any, *, elapsed: float | None = None) -> ImageError | None:
    """None when the body is a success with at least one image.

    `elapsed` (seconds the call took) tells jimeng-api's own validation (instant)
    from an outage (slow) when both say -1000; unknown counts as slow.
    """
    if not isinstance(body, dict):
        return ImageError("image_failed", "jimeng-api answered something that is not JSON", True)
    code = body.get("code")
    message = str(body.get("message") or "")
    if code is None or code == 0:
        data = body.get("data")
        if isinstance(data, list) and any(isinstance(d, dict) and d.get("url") for d in data):
            return None
        return ImageError("image_failed", "jimeng-api returned no image", True)
    if code == -2002:
        return ImageError("image_session_expired", "the jimeng session id is invalid or expired")
    if code == -2009:
        return ImageError("image_no_credits", "the jimeng account has no credits left")
    if code == -2001:
        upstream = re.search(r"错误码:\s*(\d+)", message)
        if upstream and upstream.group(1) == "1006":
            return ImageError("image_no_credits", "the jimeng account has no credits left")
        return ImageError("image_failed", f"jimeng refused the request: {message[:160]}", True)
    if code == -2006:
        return ImageError("image_content_policy", "the picture description was refused", policy=True)
    if code == -2007:
        if "2038" in message:
            return ImageError("image_content_policy", "the picture was refused by policy", policy=True)
        if "上传失败" in message:
            return ImageError("image_unavailable", f"jimeng-api cannot reach jimeng: {message[:160]}", True)
        return ImageError("image_failed", f"generation failed: {message[:160]}", True)
    if code == -2000:
        return ImageError(
            "image_config", f"jimeng-api rejected a parameter: {message[:160]}: {config_hint(message)}"
        )
    if code == -1000:
        if elapsed is not None and elapsed < INSTANT:
            return ImageError(
                "image_config",
                f"jimeng-api refused the request at once: {message[:200]}: {config_hint(message)}",
            )
        return ImageError(
            "image_unavailable",
            f"jimeng-api cannot reach jimeng ({message[:160]}): check the network or proxy of the "
            "jimeng-api container",
            True,
        )
    return ImageError("image_failed", f"jimeng error {code}: {message[:160]}", True)


class Jimeng:
    name = "jimeng"

    def __init__(
        self,
        *,
        base_url: str,
        sessions: SessionPool,
        model: str,
        timeout: float,
        resolution: str,
        check_every: float = SESSION_CHECK_EVERY,
    ) -> None:
        self.base_url = base_url
        self.sessions = sessions
        self.model = model
        self.resolution = resolution
        self.check_every = check_every
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
        )
        # The last verdict on the ids (for /readyz) is the watch's.
        self.watch = SessionWatch(http=self.http, base_url=base_url, pool=sessions, check_every=check_every)
        self._watcher: asyncio.Task[None] | None = None
        # The last configuration error jimeng-api answered, until a picture succeeds.
        self.refused: str | None = None

    async def start(self) -> None:
        self._watcher = asyncio.create_task(self.watch.run(), name="jimeng-session-watch")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.http.aclose()

    async def draw(self, *, prompt: str, ratio: str, reference: str | None, tally: Tally) -> str:
        return await self.generate(
            prompt=prompt,
            ratio=ratio,
            resolution=self.resolution,
            images=[reference] if reference else None,
            tally=tally,
        )

    async def readiness(self) -> Checks:
        # Right after start, give the first judgement of the ids a moment to arrive.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.watch.first_check.wait(), timeout=READY_WAITS_FOR_CHECK)
        checks = {"jimeng": await self.ping(), "sessions": self.watch.verdict}
        if self.refused:
            checks["drawing"] = self.refused
        return checks

    def forget_session_check(self) -> None:
        """The ids changed: judge them again now."""
        self.watch.forget()

    async def generate(
        self,
        *,
        prompt: str,
        ratio: str,
        resolution: str,
        images: list[str] | None = None,
        tally: Tally | None = None,
    ) -> str:
        """Return the URL of the first image; go on with another id when one is set aside."""
        started = time.monotonic()
        outcome = "ok"
        try:
            url = await self._generate(
                prompt=prompt, ratio=ratio, resolution=resolution, images=images, tally=tally or Tally()
            )
            self.refused = None
            return url
        except ImageError as err:
            outcome = err.code
            if err.code == "image_config":
                self.refused = err.message
            raise
        finally:
            UPSTREAM_SECONDS.labels("jimeng", outcome).observe(time.monotonic() - started)

    async def _generate(
        self, *, prompt: str, ratio: str, resolution: str, images: list[str] | None, tally: Tally
    ) -> str:
        # With reference images: /v1/images/compositions (image(s) + text to image).
        endpoint = "compositions" if images else "generations"
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": single_picture(prompt),
            "ratio": ratio,
            "resolution": resolution,
            "response_format": "url",
        }
        if images:
            body["images"] = images
        while True:
            sid = await self._next_id()
            sent = time.monotonic()
            resp = await self._post(endpoint, sid, body, tally)
            try:
                answer = resp.json()
            except ValueError:
                answer = None
            err = classify(answer, elapsed=time.monotonic() - sent)
            if err is None:
                return str(next(d["url"] for d in answer["data"] if isinstance(d, dict) and d.get("url")))
            aside = _set_aside_for(err, sid)
            if aside:
                # Nothing was drawn with this id; the same picture goes on with the next one.
                self.sessions.set_aside(sid, aside)
                if self.sessions.live():
                    continue
                if aside == REGION:
                    raise err
                raise self._none_can_draw()
            raise err

    async def _next_id(self) -> str:
        sid = self.sessions.pick()
        if sid is None and time.monotonic() - self.watch.checked_at > min(self.check_every, 10.0):
            # Every id is set aside: ask once whether one can draw again (credits back,
            # or an operator renewed the cookie upstream); pictures waiting meanwhile
            # share that one check.
            await self.watch.check_sessions(fresh_within=min(self.check_every, 10.0))
            sid = self.sessions.pick()
        if sid is None:
            raise self._none_can_draw()
        return sid

    async def _post(self, endpoint: str, sid: str, body: dict[str, Any], tally: Tally) -> httpx.Response:
        """One drawing request; a failure says whether jimeng may be drawing all the same."""
        # Counted before it goes out: a call cut short by the attempt's deadline was
        # made all the same (and may be paid for).
        tally.calls += 1
        try:
            resp = await self.http.post(
                f"{self.base_url}/v1/images/{endpoint}",
                headers={"Authorization": f"Bearer {sid}"},
                json=body,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Never reached jimeng-api: nothing was drawn or paid; another attempt may.
            tally.calls -= 1
            raise ImageError(
                "image_unavailable",
                f"jimeng-api unreachable at JIMENG_API_URL ({type(exc).__name__}): is it running?",
                True,
            ) from None
        except httpx.TimeoutException:
            raise ImageError(
                "image_timeout",
                "jimeng-api did not finish the picture within JIMENG_TIMEOUT; not asked again, "
                "because jimeng goes on drawing (and charging) after we leave",
            ) from None
        except httpx.TransportError as exc:
            raise ImageError(
                "image_timeout",
                f"the connection to jimeng-api broke while it drew ({type(exc).__name__}); not asked "
                "again, because jimeng goes on drawing (and charging) after we leave",
            ) from None
        if resp.status_code in (502, 504):
            # A proxy in front of jimeng-api gave up while jimeng-api went on drawing.
            raise ImageError(
                "image_timeout",
                f"a proxy before jimeng-api answered HTTP {resp.status_code} while it drew; not asked "
                "again, because jimeng goes on drawing (and charging)",
            )
        if resp.status_code != 200:
            raise ImageError("image_failed", f"jimeng-api answered HTTP {resp.status_code}", True)
        return resp

    def _none_can_draw(self) -> ImageError:
        why = self.sessions.why_not()
        if set(self.sessions.aside.values()) == {REGION}:
            return ImageError(
                "image_config",
                f"no jimeng session id can draw with JIMENG_MODEL={self.model} ({why}): "
                + config_hint("国际版不支持模型"),
            )
        code = "image_no_credits" if NO_CREDITS in self.sessions.aside.values() else "image_session_expired"
        return ImageError(
            code,
            f"no jimeng session id can draw ({why or 'none configured'}): "
            "run `python -m services.doctor jimeng-session set <new ids>`",
        )

    async def ping(self) -> str:
        try:
            resp = await self.http.get(f"{self.base_url}/ping", timeout=5)
        except httpx.HTTPError as exc:
            return f"unreachable at JIMENG_API_URL ({type(exc).__name__}): is jimeng-api running?"
        if resp.status_code != 200 or "pong" not in resp.text:
            return f"JIMENG_API_URL answers HTTP {resp.status_code} without pong: is it jimeng-api?"
        return "ok"
