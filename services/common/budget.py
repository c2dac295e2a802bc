"""An upstream account's budget: calls in flight at once, and calls per minute.

Moonshot and the picture providers limit an *account*, however many workers use it.
With REDIS_URL set, every worker process on every machine draws from one budget kept
in Redis; without it, each process keeps its own (an asyncio.Semaphore and an
aiolimiter.AsyncLimiter), and the operator divides the account's limits by hand.

In Redis a budget is two sorted sets, changed only by Lua scripts (atomic, timed by
the Redis server's clock, so machines' clocks do not matter):

- `slots`: who holds a slot, scored by when its lease ends. A holder renews its lease
  while its call lasts; a worker killed mid-call stops renewing, and its slot is
  freed when the lease ends (LEASE seconds), never leaked.
- `minute`: when each call of the last 60 seconds started (a sliding window).

A caller waiting for a slot looks again every few tens of milliseconds. When Redis
does not answer, the process falls back to its own budget and says so once, so a
Redis outage slows nothing down and loses nothing; the fleet may then briefly
exceed the account's limits, which the upstreams' 429s handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.metrics import BUDGET_WAIT

log = logging.getLogger(__name__)

LEASE = 30.0  # seconds a slot stays held without renewal
LOOK = (0.02, 0.08)  # seconds between looks for a free slot (jittered)

# KEYS[1] slots; ARGV: limit, lease (ms), holder. 1 when the slot is taken.
_TAKE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
  return 1
end
return 0
"""
# KEYS[1] slots; ARGV: lease (ms), holder. Renews only a slot still held.
_RENEW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[1]))
return 0
"""
# KEYS[1] minute; ARGV: calls per minute, a unique call id. 0 when the call may start,
# else how many ms until the oldest call of the window leaves it.
_START = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], 61000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + 60000 - now)
"""


class Budget:
    """This process's own budget (no REDIS_URL)."""

    def __init__(self, *, name: str, concurrency: int, per_minute: int) -> None:
        self.name = name
        self.in_flight = asyncio.Semaphore(concurrency)
        self.per_minute = AsyncLimiter(per_minute, 60) if per_minute else None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Held for the whole call; entered only when the budget allows one more."""
        started = time.monotonic()
        async with self.in_flight:
            if self.per_minute is not None:
                await self.per_minute.acquire()
            BUDGET_WAIT.labels(self.name).observe(time.monotonic() - started)
            yield


class SharedBudget(Budget):
    """One budget for every process that names it in the same Redis."""

    def __init__(
        self, redis: Redis, *, key: str, name: str, concurrency: int, per_minute: int, lease: float = LEASE
    ) -> None:
        super().__init__(name=name, concurrency=concurrency, per_minute=per_minute)
        self.lease = lease
        self.concurrency = concurrency
        self.calls_per_minute = per_minute
        self.slots_key, self.minute_key = f"{key}:slots", f"{key}:minute"
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._start = redis.register_script(_START)
        self.redis = redis
        self._warned = False

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        holder = uuid.uuid4().hex
        started = time.monotonic()
        try:
            await self._acquire(holder)
        except RedisError as exc:
            self._fallback(exc)
            async with super().slot():
                yield
            return
        BUDGET_WAIT.labels(self.name).observe(time.monotonic() - started)
        renewing = asyncio.create_task(self._keep(holder))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            with contextlib.suppress(RedisError):
                await self.redis.zrem(self.slots_key, holder)

    async def _acquire(self, holder: str) -> None:
        # Polled, not woken: the slot is freed by another process, or by a lease ending.
        lease = str(int(self.lease * 1000))
        while True:
            if await self._take(keys=[self.slots_key], args=[self.concurrency, lease, holder]):
                break
            await asyncio.sleep(random.uniform(*LOOK))
        try:
            while self.calls_per_minute:
                wait = int(await self._start(keys=[self.minute_key], args=[self.calls_per_minute, holder]))
                if not wait:
                    break
                await asyncio.sleep(wait / 1000 + random.uniform(*LOOK))
        except BaseException:
            with contextlib.suppress(RedisError):
                await self.redis.zrem(self.slots_key, holder)
            raise

    async def _keep(self, holder: str) -> None:
        lease = str(int(self.lease * 1000))
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._renew(keys=[self.slots_key], args=[lease, holder])
            except RedisError as exc:
                log.warning("could not renew a %s budget slot in Redis (%s)", self.name, type(exc).__name__)

    def _fallback(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.error(
                "Redis does not answer (%s): the %s budget is kept per process until it does; "
                "check REDIS_URL and that Redis runs",
                type(exc).__name__,
                self.name,
            )


def make_budget(
    redis: Redis | None, *, prefix: str, name: str, account: str, concurrency: int, per_minute: int = 0
) -> Budget:
    """The budget of one upstream account: shared through Redis when there is one.

    `account` (an API key, the set of session ids) is hashed, never stored: two
    installations or two keys never share a budget by accident."""
    if redis is None:
        return Budget(name=name, concurrency=concurrency, per_minute=per_minute)
    digest = hashlib.sha256(account.encode()).hexdigest()[:16]
    key = f"{prefix}:budget:{name}:{digest}"
    return SharedBudget(redis, key=key, name=name, concurrency=concurrency, per_minute=per_minute)


def connect(url: str | None) -> Redis | None:
    """A client for REDIS_URL (it connects on first use), or None without one."""
    if not url:
        return None
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
