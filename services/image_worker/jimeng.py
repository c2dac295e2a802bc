"""The jimeng-api client: every error is HTTP 200 with a `code`, so the body decides.

Session ids are used in turn, one per request (jimeng-api itself would pick one at
random from a comma list, and one dead id would give random failures). An id that
answers -2002 is set aside; the next request uses the next live one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.common.settings import mask

log = logging.getLogger(__name__)


@dataclass
class ImageError(Exception):
    code: str  # reaches the reader
    message: str
    retryable: bool = False
    policy: bool = False  # content policy: worth one retry with a softened prompt

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


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


class Jimeng:
    def __init__(
        self, *, base_url: str, sessions: SessionPool, model: str, timeout: float, max_bytes: int
    ) -> None:
        self.base_url = base_url
        self.sessions = sessions
        self.model = model
        self.max_bytes = max_bytes
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
        )
        self.download = httpx.AsyncClient(timeout=httpx.Timeout(60.0), follow_redirects=True)

    async def close(self) -> None:
        await self.http.aclose()
        await self.download.aclose()

    async def generate(self, *, prompt: str, ratio: str, resolution: str) -> str:
        """Return the URL of the first image; switch to another live id on -2002."""
        while True:
            sid = self.sessions.pick()
            if sid is None:
                raise ImageError("image_session_expired", "no live jimeng session id is configured")
            try:
                resp = await self.http.post(
                    f"{self.base_url}/v1/images/generations",
                    headers={"Authorization": f"Bearer {sid}"},
                    json={
                        "model": self.model,
                        "prompt": prompt,
                        "ratio": ratio,
                        "resolution": resolution,
                        "response_format": "url",
                    },
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
                body = resp.json()
            except ValueError:
                body = None
            err = classify(body)
            if err is None:
                return str(next(d["url"] for d in body["data"] if isinstance(d, dict) and d.get("url")))
            if err.code == "image_session_expired":
                self.sessions.kill(sid)
                if self.sessions.live():
                    continue
            raise err

    async def fetch(self, url: str) -> tuple[bytes, str]:
        """Download the picture at once: jimeng's URLs expire after a few hours."""
        try:
            async with self.download.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise ImageError(
                        "image_failed", f"downloading the picture gave HTTP {resp.status_code}", True
                    )
                ctype = resp.headers.get("content-type", "").split(";")[0].strip()
                chunks, size = [], 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ImageError("image_failed", "the picture is larger than IMAGE_MAX_BYTES")
                    chunks.append(chunk)
        except httpx.TransportError as exc:
            raise ImageError(
                "image_failed", f"downloading the picture failed: {type(exc).__name__}", True
            ) from None
        return b"".join(chunks), ctype
