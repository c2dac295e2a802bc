"""The jimeng-api client: every error is HTTP 200 with a `code`, so the body decides.

Session ids are used in turn, one per request (jimeng-api itself would pick one at
random from a comma list, and one dead id would give random failures). An id that
answers -2002 is set aside; the next request uses the next live one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.common.metrics import JIMENG_SESSIONS, UPSTREAM_SECONDS
from services.common.settings import mask
from services.image_worker.provider import Checks, ImageError, Tally

log = logging.getLogger(__name__)


def classify(body: Any) -> ImageError | None:
    """None when the body is a success with at least one image."""
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
        return ImageError("image_failed", f"generation failed: {message[:160]}", True)
    if code == -2000:
        return ImageError("image_failed", f"jimeng rejected a parameter: {message[:160]}")
    return ImageError("image_failed", f"jimeng error {code}: {message[:160]}", True)


@dataclass
class SessionPool:
    ids: list[str]
    dead: set[str] = field(default_factory=set)
    _next: int = 0

    def live(self) -> list[str]:
        return [i for i in self.ids if i not in self.dead]

    def pick(self) -> str | None:
        live = self.live()
        if not live:
            return None
        choice = live[self._next % len(live)]
        self._next += 1
        return choice

    def kill(self, sid: str) -> None:
        if sid not in self.dead:
            self.dead.add(sid)
            log.error("jimeng session id %s expired; %d live left", mask(sid), len(self.live()))
        self._count()

    def mark(self, sid: str, *, live: bool) -> None:
        if live:
            self.dead.discard(sid)
            self._count()
        else:
            self.kill(sid)

    def apply(self, mode: str, ids: list[str]) -> None:
        """An operator's rotation: takes effect for the very next picture."""
        ids = [i.strip() for i in ids if i.strip()]
        if mode == "set":
            self.ids, self.dead = ids, set()
        elif mode == "add":
            self.ids += [i for i in ids if i not in self.ids]
            self.dead -= set(ids)
        elif mode == "remove":
            self.ids = [i for i in self.ids if i not in ids]
        log.warning(
            "jimeng session ids changed (%s): now %s",
            mode,
            ", ".join(mask(i) for i in self.ids) or "none",
        )
        self._count()

    def _count(self) -> None:
        JIMENG_SESSIONS.labels("live").set(len(self.live()))
        JIMENG_SESSIONS.labels("dead").set(len([i for i in self.ids if i in self.dead]))


SESSION_CHECK_EVERY = 60.0
REVIVE_EVERY = 30.0  # seconds between re-checks of set-aside session ids when none is live


class Jimeng:
    name = "jimeng"

    def __init__(
        self, *, base_url: str, sessions: SessionPool, model: str, timeout: float, resolution: str
    ) -> None:
        self.base_url = base_url
        self.sessions = sessions
        self.model = model
        self.resolution = resolution
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
        )
        self._revived_at = 0.0
        self._session_check: tuple[float, str] | None = None

    async def close(self) -> None:
        await self.http.aclose()

    async def draw(self, *, prompt: str, ratio: str, reference: str | None, tally: Tally) -> str:
        tally.calls += 1
        return await self.generate(
            prompt=prompt, ratio=ratio, resolution=self.resolution, images=[reference] if reference else None
        )

    async def readiness(self) -> Checks:
        return {"jimeng": await self.ping(), "sessions": await self.session_check()}

    async def session_check(self) -> str:
        """Which session ids are live, asked of jimeng-api at most once a minute."""
        now = time.monotonic()
        if self._session_check is None or now - self._session_check[0] > SESSION_CHECK_EVERY:
            self._session_check = (now, await self.check_sessions())
        return self._session_check[1]

    def forget_session_check(self) -> None:
        self._session_check = None

    async def generate(
        self, *, prompt: str, ratio: str, resolution: str, images: list[str] | None = None
    ) -> str:
        """Return the URL of the first image; switch to another live id on -2002."""
        started = time.monotonic()
        outcome = "ok"
        try:
            return await self._generate(prompt=prompt, ratio=ratio, resolution=resolution, images=images)
        except ImageError as err:
            outcome = err.code
            raise
        finally:
            UPSTREAM_SECONDS.labels("jimeng", outcome).observe(time.monotonic() - started)

    async def _generate(self, *, prompt: str, ratio: str, resolution: str, images: list[str] | None) -> str:
        # With reference images: /v1/images/compositions (image(s) + text to image).
        endpoint = "compositions" if images else "generations"
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "ratio": ratio,
            "resolution": resolution,
            "response_format": "url",
        }
        if images:
            body["images"] = images
        while True:
            sid = self.sessions.pick()
            if sid is None and time.monotonic() - self._revived_at > REVIVE_EVERY:
                # Every id is set aside: ask jimeng-api once whether one came back to life
                # (a passing -2002, or an operator renewed the cookie upstream).
                self._revived_at = time.monotonic()
                await self.check_sessions()
                sid = self.sessions.pick()
            if sid is None:
                raise ImageError("image_session_expired", "no live jimeng session id is configured")
            try:
                resp = await self.http.post(
                    f"{self.base_url}/v1/images/{endpoint}",
                    headers={"Authorization": f"Bearer {sid}"},
                    json=body,
                )
            except httpx.TimeoutException:
                raise ImageError("image_timeout", "jimeng did not finish the picture in time", True) from None
            except httpx.TransportError as exc:
                raise ImageError(
                    "image_failed", f"jimeng-api unreachable: {type(exc).__name__}", True
                ) from None
            if resp.status_code != 200:
                raise ImageError("image_failed", f"jimeng-api answered HTTP {resp.status_code}", True)
            try:
                answer = resp.json()
            except ValueError:
                answer = None
            err = classify(answer)
            if err is None:
                return str(next(d["url"] for d in answer["data"] if isinstance(d, dict) and d.get("url")))
            if err.code == "image_session_expired":
                self.sessions.kill(sid)
                if self.sessions.live():
                    continue
            raise err

    async def ping(self) -> str:
        try:
            resp = await self.http.get(f"{self.base_url}/ping", timeout=5)
        except httpx.HTTPError as exc:
            return f"unreachable at JIMENG_API_URL ({type(exc).__name__}): is jimeng-api running?"
        if resp.status_code != 200 or "pong" not in resp.text:
            return f"JIMENG_API_URL answers HTTP {resp.status_code} without pong: is it jimeng-api?"
        return "ok"

    async def check_sessions(self) -> str:
        """Ask jimeng-api which ids are live; mark them so dead ones are skipped."""

        async def live(sid: str) -> bool | None:
            try:
                resp = await self.http.post(f"{self.base_url}/token/check", json={"token": sid}, timeout=10)
                return bool(resp.json().get("live"))
            except (httpx.HTTPError, ValueError, AttributeError):
                return None  # unknown: keep what we knew

        ids = list(self.sessions.ids)
        answers = await asyncio.gather(*(live(sid) for sid in ids))
        for sid, answer in zip(ids, answers, strict=True):
            if answer is not None:
                self.sessions.mark(sid, live=answer)
        dead = [mask(s) for s in ids if s in self.sessions.dead]
        if not self.sessions.live():
            return (
                f"no live jimeng session id ({', '.join(dead) or 'none configured'} expired): "
                "run `python -m services.doctor jimeng-session set <new ids>`"
            )
        return f"ok ({', '.join(dead)} expired)" if dead else "ok"
