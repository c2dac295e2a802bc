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

Claims live in Redis when REDIS_URL is set (what several machines share reliably: a
claim is one key, taken atomically, and a dead worker's claim simply expires), else in
files on this machine under `<media dir>/.claims/`, which /media never serves.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal, cast

from redis.asyncio import Redis

Status = Literal["mine", "taken", "done"]
Result = tuple[Status, dict[str, Any]]

# How long a finished picture's result is kept for a late second request: far longer
# than any redelivery or relay takes.
DONE_KEPT = 30 * 24 * 3600


class Claims(ABC):
    @abstractmethod
    async def claim(self, story_id: str, name: str, request: str, *, stale_after: float) -> Result:
        """Claim picture `name` for `request`; (status, the stored result when "done")."""

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

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
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
        return cast(Status, status), {}

    async def finish(self, story_id: str, name: str, request: str, result: dict[str, Any]) -> None:
        held = json.dumps({"request": request, "state": "done", "result": result})
        await self.redis.set(self.key(story_id, name), held, ex=DONE_KEPT)

    async def release(self, story_id: str, name: str, request: str) -> None:
        await self._release(keys=[self.key(story_id, name)], args=[request])


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
