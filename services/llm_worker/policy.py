"""What a failed attempt of the writer leads to: wait, try again, or give up.

How long the writer waits out a Moonshot failure that passes by itself:

A rate limit or an outage is a stretch of time, not a number of calls: counting
attempts either gives up on a 10 s rate limit after four quick tries or hammers a
long outage. So a temporary failure is retried for as long as `MOONSHOT_WAIT_OUT`
allows, counted from the first failure of the run, with waits that double (and honour
the server's "try again after N seconds"): a handful of calls over a minute and a
half, not dozens. The waits themselves are parked in the broker's retry queues, so a
worker that dies while the page waits loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from services.common import contracts as c
from services.common.consumer import Delivery, GiveUp, Retry, backoff
from services.llm_worker.moonshot import LlmError

log = logging.getLogger(__name__)

FIRST_WAIT = 2.0  # seconds before the second try
# Moonshot answered (with something unusable): a later rate limit or outage gets the
# whole MOONSHOT_WAIT_OUT again, not what an earlier one left of it.
ANSWERED: dict[str, object] = {"x-waits": 0, "x-waiting-since": ""}
LONGEST_WAIT = 30.0  # about the longest single wait: a recovered Moonshot is noticed soon


def wait_out(*, elapsed: float, waits: int, hint: float | None, budget: float) -> float | None:
    """Seconds until the next try, or None when the page should fail now.

    `elapsed`: seconds since the first temporary failure of this page; `waits`: how
    many waits came before; `hint`: the server's own "after N seconds", if it gave one.
    The last wait is shortened, or stretched a little, to end at the budget, so the
    final try happens just when the budget runs out, never later. A hint that reaches past the budget fails
    the page at once: trying before the server said would only spend a call.
    """
    left = budget - elapsed
    if left <= 0:
        return None
    delay = max(hint or 0.0, backoff(waits, base=FIRST_WAIT, cap=LONGEST_WAIT))
    if hint is not None and hint > left:
        return None
    if left - delay < 2 * FIRST_WAIT:
        return left  # the last try, rather than two tries a moment apart
    return delay


Notify = Callable[[c.PageWaiting], Awaitable[None]]


async def after_failure(
    err: LlmError,
    *,
    task: c.OutlineTask | c.PageTask,
    delivery: Delivery,
    budget: float,
    notify: Notify,
) -> Retry | GiveUp:
    """What the consumer does with a failed attempt (see services.common.consumer).

    A temporary failure is waited out within `budget` seconds, and the reader told
    (`notify`); an unfit page is written again, gently, and so is one refused by the
    content filter (once); another retryable failure spends an attempt; the rest
    fail the page at once. What gave up after being retried is kept for operators.
    """
    gentle = delivery.headers.get("x-gentle") == "1"
    if err.wait is not None:
        waiting = await _wait_out(err, task=task, delivery=delivery, budget=budget, notify=notify)
        if waiting is not None:
            return waiting
        since = float(delivery.headers.get("x-waiting-since") or time.time())
        waited = f"{err.message} Waited {time.time() - since:.0f}s (MOONSHOT_WAIT_OUT) in vain."
        return GiveUp(f"{err.code}: {waited} ({_tries(delivery)} attempts)", code=err.code, keep=True)
    if err.code == "llm_unsafe_output":
        return Retry(
            "the page was not fit for the reader; writing it again, gently",
            code=err.code,
            after=0,
            headers={"x-gentle": "1", **ANSWERED},
        )
    if err.code == "llm_content_filter" and not gentle:
        return Retry(
            "refused by the content filter; trying once, gently",
            code=err.code,
            after=0,
            headers={"x-gentle": "1", **ANSWERED},
        )
    if err.retryable:
        return Retry(f"attempt failed ({err.message})", code=err.code, headers=ANSWERED)
    return GiveUp(f"{err.code}: {err.message}", code=err.code)


async def _wait_out(
    err: LlmError, *, task: c.OutlineTask | c.PageTask, delivery: Delivery, budget: float, notify: Notify
) -> Retry | None:
    now = time.time()
    waits = int(delivery.headers.get("x-waits", 0) or 0)
    since = float(delivery.headers.get("x-waiting-since") or now)
    delay = wait_out(elapsed=now - since, waits=waits, hint=err.retry_after, budget=budget)
    if delay is None:
        return None
    assert err.wait is not None
    await notify(
        c.PageWaiting(
            story_id=task.story_id,
            page=task.page if isinstance(task, c.PageTask) else 0,
            attempt=task.attempt,
            tries=_tries(delivery),
            reason=err.wait,
            retry_in=round(delay, 1),
            retry_at=now + delay,
        )
    )
    # Not an attempt: the wait is bounded by time, and its clock travels with the task.
    return Retry(
        err.message,
        code=err.code,
        after=delay,
        counted=False,
        headers={"x-waits": waits + 1, "x-waiting-since": since},
    )


def _tries(delivery: Delivery) -> int:
    """Calls of this page so far: counted attempts and waits alike."""
    return delivery.retries + int(delivery.headers.get("x-waits", 0) or 0) + 1
