"""The jimeng session ids: which can draw, which are set aside and why, and the watcher
that judges them by what proves something (docs/upstreams.md).

`/token/check` says `live: false` for ANY failure, jimeng-api's own outage included,
so it never marks an id dead. Ids are judged by `/token/points` instead: -2002 means
expired, 0 credits means none left, and -1000 after ~15 s means jimeng-api cannot
reach jimeng, which says nothing about the ids (what was known is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.common.metrics import JIMENG_SESSIONS
from services.common.settings import mask

log = logging.getLogger(__name__)

# How long a credit check may take: the real server answers a failure after ~15 s.
POINTS_TIMEOUT = 40.0
SESSION_CHECK_EVERY = 60.0
REFUSED = "jimeng refused the credit check"
EXPIRED, NO_CREDITS = "expired", "no credits"
REGION = "a region id that lacks JIMENG_MODEL"


@dataclass
class SessionPool:
    """The ids the worker draws with, where they came from, and which are set aside (and why)."""

    ids: list[str]
    source: str = "JIMENG_SESSION_ID"
    aside: dict[str, str] = field(default_factory=dict)  # id -> EXPIRED or NO_CREDITS
    # When the newest operator command this worker has judged was sent (unix time).
    applied_at: float = 0.0
    _next: int = 0

    def live(self) -> list[str]:
        return [i for i in self.ids if i not in self.aside]

    def pick(self) -> str | None:
        live = self.live()
        if not live:
            return None
        choice = live[self._next % len(live)]
        self._next += 1
        return choice

    def set_aside(self, sid: str, why: str) -> None:
        if self.aside.get(sid) != why:
            self.aside[sid] = why
            log.error(
                "jimeng session id %s set aside (%s); %d of %d can draw",
                mask(sid),
                why,
                len(self.live()),
                len(self.ids),
            )
        self._count()

    def kill(self, sid: str) -> None:
        self.set_aside(sid, EXPIRED)

    def revive(self, sid: str) -> None:
        if self.aside.pop(sid, None) is not None:
            log.warning("jimeng session id %s can draw again", mask(sid))
        self._count()

    def apply(self, mode: str, ids: list[str], *, source: str | None = None) -> None:
        """An operator's rotation: takes effect for the very next picture."""
        ids = [i.strip() for i in ids if i.strip()]
        if mode == "set":
            self.ids, self.aside = ids, {}
        elif mode == "add":
            self.ids += [i for i in ids if i not in self.ids]
            for i in ids:
                self.aside.pop(i, None)
        elif mode == "remove":
            self.ids = [i for i in self.ids if i not in ids]
        self.source = source or f"{self.source} + `jimeng-session {mode}`"
        log.warning(
            "jimeng session ids changed (%s): now %s, from %s",
            mode,
            ", ".join(mask(i) for i in self.ids) or "none",
            self.source,
        )
        self._count()

    def why_not(self) -> str:
        """The set-aside ids and why, masked: "...0000 expired, ...1111 no credits"."""
        return ", ".join(f"{mask(i)} {self.aside[i]}" for i in self.ids if i in self.aside)

    def _count(self) -> None:
        JIMENG_SESSIONS.labels("live").set(len(self.live()))
        JIMENG_SESSIONS.labels("dead").set(sum(1 for i in self.ids if self.aside.get(i) == EXPIRED))
        JIMENG_SESSIONS.labels("no_credits").set(sum(1 for i in self.ids if self.aside.get(i) == NO_CREDITS))


@dataclass(frozen=True)
class Points:
    """What `/token/points` says of one id: credits left, or why it could not say."""

    credits: int | None = None
    expired: bool = False
    unreachable: str = ""  # jimeng-api could not ask jimeng (outage), or did not answer


class SessionWatch:
    """Judges the ids by their credits at start, every `check_every` seconds, and
    whenever they change; keeps the verdict /readyz shows."""

    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, pool: SessionPool, check_every: float
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.pool = pool
        self.check_every = check_every
        self.verdict = "checking the session ids with jimeng-api"
        self.checked_at = 0.0
        self.first_check = asyncio.Event()
        self._check_now = asyncio.Event()
        self._check_lock = asyncio.Lock()

    def forget(self) -> None:
        """The ids changed: judge them again now."""
        self._check_now.set()

    async def run(self) -> None:
        """Judge the ids at start, every minute, and whenever they change."""
        while True:
            try:
                await self.check_sessions()
            except Exception:  # the watcher must outlive any odd answer
                log.exception("checking the jimeng session ids failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check_now.wait(), timeout=self.check_every)
            self._check_now.clear()

    async def points(self, sid: str) -> Points:
        """Ask jimeng-api what one id has left (it asks jimeng; ~15 s when it cannot)."""
        try:
            resp = await self.http.post(
                f"{self.base_url}/token/points",
                headers={"Authorization": f"Bearer {sid}"},
                timeout=POINTS_TIMEOUT,
            )
            body = resp.json()
        except httpx.TimeoutException:
            return Points(unreachable=f"jimeng-api did not answer a credit check in {POINTS_TIMEOUT:.0f} s")
        except (httpx.HTTPError, ValueError) as exc:
            return Points(unreachable=f"jimeng-api unreachable ({type(exc).__name__})")
        return read_points(body)

    async def check_sessions(self, *, fresh_within: float = 0.0) -> str:
        """Judge every id by its credits, set aside or give back, and keep the verdict
        (unless another check finished less than `fresh_within` seconds ago)."""
        async with self._check_lock:
            if fresh_within and time.monotonic() - self.checked_at < fresh_within:
                return self.verdict
            ids = list(self.pool.ids)
            answers = await asyncio.gather(*(self.points(sid) for sid in ids))
            self.checked_at = time.monotonic()
            outage = ""
            for sid, answer in zip(ids, answers, strict=True):
                if sid not in self.pool.ids:
                    continue  # removed while it was checked
                if answer.expired:
                    self.pool.set_aside(sid, EXPIRED)
                elif answer.credits is not None:
                    if answer.credits > 0 and self.pool.aside.get(sid) != REGION:
                        # (an id whose region lacks the model stays aside until a restart
                        # with another JIMENG_MODEL: its credits do not change that)
                        self.pool.revive(sid)
                    else:
                        self.pool.set_aside(sid, NO_CREDITS)
                else:
                    outage = answer.unreachable  # says nothing about the id: keep what we knew
            self.verdict = self._verdict(outage, confirmed=any(a.unreachable == "" for a in answers))
            self.first_check.set()
            return self.verdict

    def _verdict(self, outage: str, *, confirmed: bool) -> str:
        pool = self.pool
        if not pool.ids:
            return "no jimeng session id configured: set JIMENG_SESSION_ID or run `doctor jimeng-session set`"
        if outage and not confirmed:
            if outage.startswith(REFUSED):
                return f"{outage}: the ids could not be checked; see `docker compose logs jimeng-api`"
            return f"jimeng-api cannot reach jimeng ({outage}): check the network or proxy of jimeng-api"
        if not pool.live():
            return (
                f"no jimeng session id can draw ({pool.why_not()}; ids from {pool.source}): "
                "run `python -m services.doctor jimeng-session set <new ids>`"
            )
        remarks = [f"{len(pool.live())} of {len(pool.ids)} ids can draw, from {pool.source}"]
        if pool.aside:
            remarks.append(pool.why_not())
        if outage:
            remarks.append(f"some ids not checked: {outage}")
        return f"ok ({'; '.join(remarks)})"


def read_points(body: Any) -> Points:
    """One id's `/token/points` answer: a list with its credits, or an error body."""
    if isinstance(body, dict) and body.get("code") == -2002:
        return Points(expired=True)
    if isinstance(body, list):
        for item in body:
            points = item.get("points") if isinstance(item, dict) else None
            if isinstance(points, dict) and isinstance(points.get("totalCredit"), int | float):
                return Points(credits=int(points["totalCredit"]))
    if isinstance(body, dict) and body.get("code") == -2001:
        # Anti-bot, region or permission: jimeng answered, and refused; not an outage.
        return Points(unreachable=f"{REFUSED} (code -2001: {str(body.get('message'))[:100]})")
    if isinstance(body, dict) and body.get("code") is not None:
        return Points(unreachable=f"code {body.get('code')}: {str(body.get('message'))[:120]}")
    # Never the body itself: the real one lists the ids it was asked about.
    return Points(unreachable=f"an answer to a credit check that is not understood ({type(body).__name__})")
