"""One picture, drawn once, whoever asks for it twice.

The same picture can be asked for twice: a page task redelivered after its llm_worker
died asks for its page's picture again, and the gateway's outbox relay may publish a
redraw a second time. Each picture request carries an id (`ImageTask.request`). Before
drawing, a worker claims the picture (media.drawing_name) where every image_worker
sees it:

- no claim yet: this request takes it and draws;
- claimed by this same request (a retry or a redelivery of it): it goes on, and
  refreshes the claim;
- claimed by another request that is still alive (the claim was touched recently):
  the same picture is being drawn already, so this request is dropped;
- claimed long ago (its worker died and nothing came back for it): taken over;
- done: the picture exists, and its result is sent again (the gateway applies a
  result once), so a result lost after the picture was stored is not lost for good.

A claim also says how far its request got, because a provider charges for a picture
it was asked for whether or not anyone is still there to take it:
- "submitted": a drawing was asked for and its outcome is not known. A delivery of
  the same request that finds this (its worker died or lost the broker mid-draw)
  must not ask again: the first one may be drawn and paid for.
- "drawn": the provider answered with the picture's URL, which lasts hours; a later
  attempt downloads it instead of paying for another.

Claims live in Redis when REDIS_URL is set (what several machines share reliably: a
claim is one key, taken atomically, and a dead worker's claim simply expires), else in
files on this machine under `<media dir>/.claims/`, which /media never serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from redis.asyncio import Redis

Status = Literal["mine", "taken", "done", "submitted", "drawn"]
Result = tuple[Status, dict[str, Any]]

# How long a finished picture's result is kept for a late second request: far longer
# than any redelivery or relay takes.
DONE_KEPT = 30 * 24 * 3600


class Claims(ABC):
    @abstractmethod
    async def claim(self, story_id: str, name: str, request: str, *, stale_after: float) -> Result:
        """Claim picture `name` for `request`; (status, the stored result when "done")."""

    @abstractmethod
    async def mark(self, story_id: str, name: str, request: str, state: str, **extra: Any) -> None:
        """Record how far `request` got: "drawing" (nothing asked of the provider, or its
        answer is known and cost nothing), "submitted", or "drawn" with the picture's `url`."""

    @abstractmethod
    async def finish(self, story_id: str, name: str, request: str, result: dict[str, Any]) -> None:
        """The picture is stored: later askers get `result` instead of a new drawing."""

    @abstractmethod
    async def release(self, story_id: str, name: str, request: str) -> None:
        """The picture failed for good: whoever asks again may draw it."""


class FileClaims(Claims):
    """A claim is a small JSON file, replaced atomically; its modification time says
    when it was last touched. One machine only: files over NFS do not lock reliably."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, story_id: str, name: str) -> Path:
        return self.root / story_id / f"{name}.claim"

    async def claim(self, story_id: str, name: str, request: str, *, stale_after: float) -> Result:
        return await asyncio.to_thread(self._claim, self.path(story_id, name), request, stale_after)

    async def mark(self, story_id: str, name: str, request: str, state: str, **extra: Any) -> None:
        held = {"request": request, "state": state, **extra}
        await asyncio.to_thread(_write, self.path(story_id, name), held)

    async def finish(self, story_id: str, name: str, request: str, result: dict[str, Any]) -> None:
        held = {"request": request, "state": "done", "result": result}
        await asyncio.to_thread(_write, self.path(story_id, name), held)

    async def release(self, story_id: str, name: str, request: str) -> None:
        path = self.path(story_id, name)
        if (await asyncio.to_thread(_read, path)).get("request") == request:
            path.unlink(missing_ok=True)

    @staticmethod
    def _claim(path: Path, request: str, stale_after: float) -> Result:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                json.dump({"request": request, "state": "drawing"}, f)
            return "mine", {}
        held = _read(path)
        if held.get("state") == "done" and isinstance(held.get("result"), dict):
            return "done", held["result"]
        mine = held.get("request") == request
        if mine and held.get("state") == "submitted":
            return "submitted", held
        if mine and held.get("state") == "drawn" and isinstance(held.get("url"), str):
            with contextlib.suppress(OSError):
                os.utime(path)
            return "drawn", held
        age = time.time() - _mtime(path)
        if held.get("request") == request or age > stale_after:
            _write(path, {"request": request, "state": "drawing"})
            return "mine", {}
        return "taken", {}


# KEYS[1] the claim; ARGV: what "drawing" looks like, the request, the lease (ms).
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then
  local data = cjson.decode(held)
  if data.state == 'done' then return {'done', held} end
  if data.request ~= ARGV[2] then return {'taken', ''} end
  if data.state == 'submitted' then return {'submitted', held} end
  if data.state == 'drawn' and type(data.url) == 'string' then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {'drawn', held}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {'mine', ''}
"""
# KEYS[1] the claim; ARGV[1] the request that may release it.
_RELEASE = """
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held).request == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisClaims(Claims):
    """A claim is one key whose lease is the staleness: a dead worker's claim expires."""

    def __init__(self, redis: Redis, *, prefix: str, lease: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.lease = lease  # what every claim() of this worker passes as stale_after
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    def key(self, story_id: str, name: str) -> str:
        return f"{self.prefix}:claim:{story_id}/{name}"

    async def claim(self, story_id: str, name: str, request: str, *, stale_after: float) -> Result:
        drawing = json.dumps({"request": request, "state": "drawing"})
        lease = str(int(stale_after * 1000))
        answer = await self._claim(keys=[self.key(story_id, name)], args=[drawing, request, lease])
        status, held = (_text(part) for part in answer)
        if status == "done":
            return "done", json.loads(held)["result"]
        if status in ("submitted", "drawn"):
            return cast(Status, status), json.loads(held)
        return cast(Status, status), {}

    async def mark(self, story_id: str, name: str, request: str, state: str, **extra: Any) -> None:
        held = json.dumps({"request": request, "state": state, **extra})
        # Touched, as a claim file's write is: its lease starts again.
        await self.redis.set(self.key(story_id, name), held, px=int(self.lease * 1000))

    async def finish(self, story_id: str, name: str, request: str, result: dict[str, Any]) -> None:
        held = json.dumps({"request": request, "state": "done", "result": result})
        await self.redis.set(self.key(story_id, name), held, ex=DONE_KEPT)

    async def release(self, story_id: str, name: str, request: str) -> None:
        await self._release(keys=[self.key(story_id, name)], args=[request])


@dataclass
class Ledger:
    """How far one picture request got, kept in its claim so that no later delivery
    pays for it again. A task without a request id has no claim: nothing kept."""

    claims: Claims | None
    story_id: str
    name: str
    request: str

    @classmethod
    def none(cls) -> Ledger:
        return cls(None, "", "", "")

    async def submitted(self) -> None:
        await self._mark("submitted")

    async def settled(self) -> None:
        await self._mark("drawing")

    async def drawn(self, url: str, *, used: bool, why: str | None) -> None:
        await self._mark("drawn", url=url, used=used, why=why)

    async def _mark(self, state: str, **extra: Any) -> None:
        if self.request and self.claims is not None:
            await self.claims.mark(self.story_id, self.name, self.request, state, **extra)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".part-", delete=False) as tmp:
        json.dump(data, tmp)
    os.replace(tmp.name, path)
