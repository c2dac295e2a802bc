"""How long the writer waits out a Moonshot failure that passes by itself.

A rate limit or an outage is a stretch of time, not a number of calls: counting
attempts either gives up on a 10 s rate limit after four quick tries or hammers a
long outage. So a temporary failure is retried for as long as `MOONSHOT_WAIT_OUT`
allows, counted from the first failure of the run, with waits that double (and honour
the server's "try again after N seconds"): a handful of calls over a minute and a
half, not dozens. The waits themselves are parked in the broker's retry queues, so a
worker that dies while the page waits loses nothing.
"""

from __future__ import annotations

from services.common.bus import backoff

FIRST_WAIT = 2.0  # seconds before the second try
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
