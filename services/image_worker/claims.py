"""One picture, drawn once, whoever asks for it twice.

The same picture can be asked for twice: a page task redelivered after its llm_worker
died asks for its page's picture again, and the gateway's outbox relay may publish a
redraw a second time. Each picture request carries an id (`ImageTask.request`). Before
drawing, a worker claims the picture in the story's media folder (the folder every
image_worker shares):

- no claim yet: this request takes it (an exclusive create) and draws;
- claimed by this same request (a retry or a redelivery of it): it goes on, and
  refreshes the claim;
- claimed by another request that is still alive (the claim was touched recently):
  the same picture is being drawn already, so this request is dropped;
- claimed long ago (its worker died and nothing came back for it): taken over;
- done: the picture exists, and its result is sent again (the gateway applies a
  result once), so a result lost after the file was stored is not lost for good.

A claim also says how far its request got, because a provider charges for a picture
it was asked for whether or not anyone is still there to take it:
- "submitted": a drawing was asked for and its outcome is not known. A delivery of
  the same request that finds this (its worker died or lost the broker mid-draw)
  must not ask again: the first one may be drawn and paid for.
- "drawn": the provider answered with the picture's URL, which lasts hours; a later
  attempt downloads it instead of paying for another.

A claim is a small JSON file, replaced atomically; its modification time says when
it was last touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

Status = Literal["mine", "taken", "done", "submitted", "drawn"]


def claim_path(folder: Path, name: str) -> Path:
    return folder / f".{name}.claim"


def claim(folder: Path, name: str, request: str, *, stale_after: float) -> tuple[Status, dict[str, Any]]:
    """Claim picture `name` for `request`; (status, the stored result when "done")."""
    folder.mkdir(parents=True, exist_ok=True)
    path = claim_path(folder, name)
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
    if held.get("request") == request and held.get("state") == "submitted":
        return "submitted", held
    if held.get("request") == request and held.get("state") == "drawn" and isinstance(held.get("url"), str):
        _touch(path)
        return "drawn", held
    age = time.time() - _mtime(path)
    if held.get("request") == request or age > stale_after:
        _write(path, {"request": request, "state": "drawing"})
        return "mine", {}
    return "taken", {}


def mark(folder: Path, name: str, request: str, state: str, **extra: Any) -> None:
    """Record how far `request` got: "drawing" (nothing asked of the provider, or its
    answer is known and cost nothing), "submitted", or "drawn" with the picture's `url`."""
    _write(claim_path(folder, name), {"request": request, "state": state, **extra})


def finish(folder: Path, name: str, request: str, result: dict[str, Any]) -> None:
    """The picture is stored: later askers get `result` instead of a new drawing."""
    _write(claim_path(folder, name), {"request": request, "state": "done", "result": result})


def release(folder: Path, name: str, request: str) -> None:
    """The picture failed for good: whoever asks again may draw it."""
    path = claim_path(folder, name)
    if _read(path).get("request") == request:
        path.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _write(path: Path, data: dict[str, Any]) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".part-", delete=False) as tmp:
        json.dump(data, tmp)
    os.replace(tmp.name, path)
