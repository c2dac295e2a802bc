"""The writer's decisions about a temporary Moonshot failure: wait how long, or give up."""

from __future__ import annotations

import itertools

import pytest

from services.llm_worker.policy import FIRST_WAIT, wait_out

BUDGET = 90.0


def schedule(*, budget: float, hint: float | None = None) -> list[float]:
    """When each try happens (seconds after the first failure) if every try fails."""
    tries, elapsed, waits = [0.0], 0.0, 0
    while (delay := wait_out(elapsed=elapsed, waits=waits, hint=hint, budget=budget)) is not None:
        elapsed += delay
        waits += 1
        tries.append(elapsed)
        assert waits < 100, "the budget must end the waiting"
    return tries


@pytest.mark.parametrize("run", range(20))  # the waits are jittered: check many draws
def test_a_minute_of_trouble_costs_a_handful_of_calls_and_never_fails_the_page(run: int) -> None:
    tries = schedule(budget=BUDGET)
    assert 6 <= len(tries) <= 9, tries  # a handful, not dozens
    assert tries[-1] == pytest.approx(BUDGET), "the last try is made just as the budget ends"
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[0] <= FIRST_WAIT * 1.2 and gaps[1] > gaps[0], "quick at first, then further apart"
    # Trouble that ends anywhere in the first minute is noticed within ~half a minute.
    assert max(gaps) <= 40 and min(gaps[1:]) >= 2 * FIRST_WAIT * 0.8


def test_a_ten_second_rate_limit_needs_four_calls() -> None:
    # Moonshot's RPM limit says "after 1 seconds" however long it lasts: the writer
    # waits longer each time instead of knocking every second.
    tries = schedule(budget=BUDGET, hint=1.0)
    assert len([t for t in tries if t < 10]) <= 4


def test_the_servers_hint_is_honoured() -> None:
    assert wait_out(elapsed=0, waits=0, hint=12.0, budget=BUDGET) == 12.0


def test_a_hint_past_the_budget_fails_now_instead_of_spending_a_call() -> None:
    assert wait_out(elapsed=80, waits=4, hint=20.0, budget=BUDGET) is None


@pytest.mark.parametrize("elapsed", [90.0, 91.0, 500.0])
def test_past_the_budget_the_page_fails(elapsed: float) -> None:
    assert wait_out(elapsed=elapsed, waits=5, hint=None, budget=BUDGET) is None


def test_no_budget_fails_at_once() -> None:
    assert wait_out(elapsed=0, waits=0, hint=None, budget=0) is None
