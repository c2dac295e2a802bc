"""Which reader sockets on this replica listen to which story, and the text being written.

Every replica receives every live message (durable events after they are stored,
and text deltas) from its own queue on the live exchange; the hub hands each one to
the sockets of that story held here. It also keeps the text of each page being
written, from its first delta, so a reader who connects mid-page sees the page from
its beginning, not from wherever the stream happened to be.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from services.common import events as ev
from services.common.contracts import LiveEvent, SyncHint, TextDelta, TextReset

PARTIAL_TTL = 15 * 60.0
SYNC = "_sync"  # internal: never sent to a reader
# After these, a page's text being written is gone from the hub (done, failed, or restarted).
PAGE_SETTLED = frozenset({ev.PageTextDone.type, ev.PageFailed.type, ev.PageStarted.type})


@dataclass
class Partial:
    attempt: int
    text: str
    touched: float = field(default_factory=time.monotonic)


class Subscription:
    def __init__(self, story_id: str, *, size: int) -> None:
        self.story_id = story_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.overflowed = asyncio.Event()

    def offer(self, item: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # A reader this far behind is cut off; it resumes with `after` and
            # loses nothing, while this process keeps bounded memory.
            self.overflowed.set()


class Hub:
    def __init__(self, *, buffer: int) -> None:
        self.buffer = buffer
        self._subs: dict[str, set[Subscription]] = {}
        self._partial: dict[tuple[str, int], Partial] = {}

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def subscribe(self, story_id: str) -> Subscription:
        sub = Subscription(story_id, size=self.buffer)
        self._subs.setdefault(story_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.story_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.story_id]

    def partial(self, story_id: str, page: int) -> Partial | None:
        return self._partial.get((story_id, page))

    def partials(self, story_id: str) -> list[tuple[int, Partial]]:
        return sorted((p, v) for (s, p), v in self._partial.items() if s == story_id)

    def resync_all(self) -> None:
        """Every socket here reads what it may have missed from the store."""
        for subs in self._subs.values():
            for sub in subs:
                sub.offer({"type": SYNC, "last_seq": None})

    def dispatch(self, item: TextDelta | TextReset | SyncHint | LiveEvent) -> None:
        frame: dict[str, Any]
        if isinstance(item, SyncHint):
            frame = {"type": SYNC, "last_seq": item.last_seq}
        elif isinstance(item, TextReset):
            self._partial.pop((item.story_id, item.page), None)
            frame = ev.PageTextReset(page=item.page, attempt=item.attempt).frame()
        elif isinstance(item, TextDelta):
            self._track(item)
            frame = ev.PageTextDelta(
                page=item.page, attempt=item.attempt, offset=item.offset, delta=item.delta, ts=item.ts
            ).frame()
        else:
            if item.type in PAGE_SETTLED:
                self._partial.pop((item.story_id, int(str(item.data.get("page", -1)))), None)
            frame = {"type": item.type, "seq": item.seq, **item.data}
        for sub in self._subs.get(item.story_id, ()):
            sub.offer(frame)

    def _track(self, d: TextDelta) -> None:
        key = (d.story_id, d.page)
        known = self._partial.get(key)
        if d.offset == 0 and (known is None or d.attempt >= known.attempt):
            self._partial[key] = Partial(d.attempt, d.delta)
        elif known is not None and known.attempt == d.attempt and d.offset <= len(known.text):
            known.text = known.text[: d.offset] + d.delta
            known.touched = time.monotonic()
        # A delta past what we hold means we missed the page's start: nothing to track.

    def sweep(self) -> None:
        """Forget pages whose writer went silent (it crashed; the redelivery restarts at 0)."""
        now = time.monotonic()
        for key in [k for k, v in self._partial.items() if now - v.touched > PARTIAL_TTL]:
            del self._partial[key]
