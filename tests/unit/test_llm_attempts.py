"""One delivery of a page task against the fake Moonshot (a real HTTP server): what it
costs, and what a failure leads to (wait, retry, or fail) as the broker would see it.

The broker side is a stand-in that records what the writer asks of it; the waits
through the real broker are proven in tests/chaos/test_upstream_faults.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from services.common import contracts as c
from services.common.amqp import Link
from services.common.bus import BrokerUnavailable, make_broker
from services.common.consumer import Delivery, GiveUp, Retry
from services.common.topology import Topology
from services.fakes import moonshot
from services.fakes.serving import BackgroundServer
from services.llm_worker.config import LlmSettings
from services.llm_worker.story import Attempt, Writer

KEY = "sk-test-key"
BRIEF = c.StoryBrief(premise="一只怕黑的小刺猬想去看星星", age=5, language="zh", style="水彩", total_pages=4)
OUTLINE = c.Outline(
    title="小刺猬看星星", characters=[c.Character(name="刺刺", look="a small hedgehog")], style="水彩"
)


class Parked:
    """One delivery as the consumer hands it over, and what the writer raised for it."""

    def __init__(self, headers: dict[str, Any] | None = None, *, max_attempts: int = 3) -> None:
        msg = SimpleNamespace(headers=dict(headers or {}), raw_message=SimpleNamespace(redelivered=False))
        self.delivery = Delivery(msg, max_attempts=max_attempts)  # type: ignore[arg-type]
        self.outcome: Retry | GiveUp | None = None

    @property
    def later(self) -> list[Retry]:
        return [self.outcome] if isinstance(self.outcome, Retry) else []

    @property
    def gave_up(self) -> GiveUp | None:
        return self.outcome if isinstance(self.outcome, GiveUp) else None

    def next(self) -> Parked:
        """The message as it comes back from the retry queue."""
        [last] = self.later
        retries = self.delivery.retries + (1 if last.counted else 0)
        return Parked({**self.delivery.headers, **last.headers, "x-retries": retries})


async def handle(w: Writer, task: c.PageTask, parked: Parked, sent: list[c.Contract] | None = None) -> Parked:
    """One attempt; a give-up is reported as the consumer would report it."""
    try:
        await w.handle(task, parked.delivery)
    except (Retry, GiveUp) as outcome:
        parked.outcome = outcome
        if isinstance(outcome, GiveUp) and sent is not None:
            sent.append(await w.failed(task, outcome))
    return parked


@pytest.fixture
def fake() -> Iterator[BackgroundServer]:
    with BackgroundServer(moonshot.create_app(moonshot.MoonshotConfig(api_key=KEY, ttft=0, tps=0))) as server:
        yield server


def settings_for(base_url: str) -> LlmSettings:
    return LlmSettings(
        app_env="test",
        moonshot_api_key=KEY,  # type: ignore[arg-type]
        moonshot_base_url=base_url,
        moonshot_rpm=0,
        moonshot_wait_out=90,
    )


def writer_for(base_url: str) -> Writer:
    # The broker is never connected: what the writer publishes is caught below.
    url = "amqp://guest:guest@127.0.0.1:5672/"
    return Writer(
        settings=settings_for(base_url), broker=make_broker(url), link=Link(url), topology=Topology("t")
    )


@pytest.fixture
async def writer(fake: BackgroundServer) -> AsyncIterator[tuple[Writer, list[c.Contract]]]:
    w = Writer(
        settings=settings_for(f"{fake.url}/v1"),
        broker=make_broker("amqp://x@127.0.0.1/"),
        link=Link("amqp://x@127.0.0.1/"),
        topology=Topology("t"),
    )
    sent: list[c.Contract] = []

    async def result(message: c.Contract, story_id: str, **_: Any) -> None:
        sent.append(message)

    async def nowhere(message: Any) -> None:
        return None

    w._result = result  # type: ignore[method-assign]
    w._picture = nowhere  # type: ignore[method-assign]
    w._live = nowhere  # type: ignore[method-assign]
    await w.start()
    yield w, sent
    await w.stop()


def typed_page() -> c.PageTask:
    return c.PageTask(
        story_id="s1", page=1, brief=BRIEF, outline=OUTLINE, direction="刺刺去找萤火虫", direction_typed=True
    )


def of(sent: list[c.Contract], kind: type[c.Contract]) -> list[Any]:
    return [m for m in sent if isinstance(m, kind)]


async def fault(server: BackgroundServer, **body: Any) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{server.url}/_fake/faults", json=body)).raise_for_status()


async def calls_made(server: BackgroundServer) -> int:
    async with httpx.AsyncClient() as http:
        return int((await http.get(f"{server.url}/_fake/stats")).json()["requests"])


async def test_usage_counts_the_suitability_call_of_a_typed_idea(
    writer: tuple[Writer, list[c.Contract]], fake: BackgroundServer
) -> None:
    w, sent = writer
    judged = Attempt()
    assert await w.suitable("刺刺去找萤火虫", brief=BRIEF, attempt=judged)
    assert judged.usage.calls == 1 and judged.usage.tokens_in > 0

    await handle(w, typed_page(), Parked())
    [report] = of(sent, c.UsageReport)
    assert of(sent, c.PageTextDone), sent
    # The suitability check and the page: two calls made, two counted, tokens of both.
    assert report.llm_calls == 2 == await calls_made(fake) - 1
    assert report.tokens_in > judged.usage.tokens_in and report.tokens_out > judged.usage.tokens_out
    assert report.retries == 0


async def test_no_call_is_counted_when_moonshot_cannot_be_reached() -> None:
    with BackgroundServer(moonshot.create_app(moonshot.MoonshotConfig())) as gone:
        url = f"{gone.url}/v1"
    w = writer_for(url)
    sent: list[c.Contract] = []

    async def result(message: c.Contract, story_id: str, **_: Any) -> None:
        sent.append(message)

    w._result = result  # type: ignore[method-assign]
    await w.start()
    delivery = Parked()
    try:
        await handle(w, typed_page(), delivery, sent)
    finally:
        await w.stop()
    assert not of(sent, c.UsageReport), "a refused connection reached no one and cost nothing"
    [waiting] = of(sent, c.PageWaiting)
    assert waiting.reason == "llm_unreachable" and delivery.later and not delivery.gave_up


async def test_a_rate_limit_is_waited_out_and_the_reader_told(
    writer: tuple[Writer, list[c.Contract]], fake: BackgroundServer
) -> None:
    w, sent = writer
    await fault(fake, mode="rate_limit", count=1, seconds=3)
    delivery = await handle(w, typed_page(), Parked(), sent)
    [waiting] = of(sent, c.PageWaiting)
    assert (waiting.reason, waiting.page, waiting.tries) == ("llm_busy", 1, 1)
    assert waiting.retry_in >= 3 and waiting.retry_at == pytest.approx(time.time() + waiting.retry_in, abs=2)
    [later] = delivery.later
    # Parked in the broker, not counted as an attempt, with the clock of the trouble.
    assert later.after is not None and later.after >= 3
    assert not later.counted and later.headers["x-waits"] == 1
    assert not of(sent, c.PageFailed) and not delivery.gave_up

    sent.clear()
    again = await handle(w, typed_page(), delivery.next(), sent)
    assert again.outcome is None
    kinds = [m.kind for m in sent]
    assert kinds.index("page.resumed") < kinds.index("page.text.done"), kinds
    [resumed] = of(sent, c.PageResumed)
    assert resumed.tries == 2
    [report] = of(sent, c.UsageReport)
    assert report.llm_calls == 2 and report.retries == 1


async def test_past_the_budget_the_page_fails_and_keeps_its_reason(
    writer: tuple[Writer, list[c.Contract]], fake: BackgroundServer
) -> None:
    w, sent = writer
    await fault(fake, mode="server_error", count=1)
    delivery = Parked({"x-waits": 6, "x-waiting-since": time.time() - 91})
    await handle(w, typed_page(), delivery, sent)
    [failed] = of(sent, c.PageFailed)
    assert failed.error.code == "llm_unavailable" and "Tap retry" in failed.error.message
    assert delivery.gave_up is not None and delivery.gave_up.keep, "kept for operators"
    assert "MOONSHOT_WAIT_OUT" in delivery.gave_up.reason


@pytest.mark.parametrize(
    "mode, code", [("quota", "llm_quota"), ("auth", "llm_auth"), ("model_not_found", "llm_model")]
)
async def test_a_permanent_error_fails_at_once_with_one_call(
    writer: tuple[Writer, list[c.Contract]], fake: BackgroundServer, mode: str, code: str
) -> None:
    w, sent = writer
    await fault(fake, mode=mode, count=5)
    delivery = await handle(w, typed_page(), Parked(), sent)
    assert [m.error.code for m in of(sent, c.PageFailed)] == [code]
    assert not of(sent, c.PageWaiting) and not delivery.later
    assert delivery.gave_up is not None and not delivery.gave_up.keep, "nothing to retry, nothing kept"
    assert await calls_made(fake) == 1
    assert of(sent, c.UsageReport)[0].llm_calls == 1


class FlakyBroker:
    """A broker that does not confirm the page's result the first `failures` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[Any] = []

    async def publish(self, message: Any, **_: Any) -> None:
        if isinstance(message, c.PageTextDone) and self.failures > 0:
            self.failures -= 1
            raise ConnectionError("connection reset by the broker")
        self.published.append(message)


@pytest.fixture
def flaky(fake: BackgroundServer, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], Any]:
    """A started writer whose broker refuses the page's result `failures` times."""
    monkeypatch.setattr("services.common.bus.PATIENCE", (0.01, 0.01))

    @contextlib.asynccontextmanager
    async def writer(failures: int) -> AsyncIterator[tuple[Writer, FlakyBroker]]:
        broker = FlakyBroker(failures)
        settings = settings_for(f"{fake.url}/v1")
        link = Link("amqp://x@127.0.0.1/")
        w = Writer(settings=settings, broker=broker, link=link, topology=Topology("t"))  # type: ignore[arg-type]

        async def nowhere(message: Any) -> None:
            return None

        w._live = nowhere  # type: ignore[method-assign]
        await w.start()
        try:
            yield w, broker
        finally:
            await w.stop()

    return writer


def page_task() -> c.PageTask:
    return c.PageTask(story_id="s1", page=1, brief=BRIEF, outline=OUTLINE, direction="刺刺去找萤火虫")


async def test_a_result_the_broker_did_not_confirm_is_sent_again_not_written_again(
    fake: BackgroundServer, flaky: Any
) -> None:
    async with flaky(2) as (w, broker):
        parked = await handle(w, page_task(), Parked())
    assert parked.outcome is None, "neither retried nor failed"
    assert [m for m in broker.published if isinstance(m, c.PageTextDone)]
    assert await calls_made(fake) == 1, "Moonshot's answer was in hand: it is not asked again"


async def test_a_broker_that_stays_away_is_never_a_moonshot_failure(
    fake: BackgroundServer, flaky: Any
) -> None:
    async with flaky(10) as (w, broker):
        with pytest.raises(BrokerUnavailable):  # the consumer requeues it: no attempt spent
            await w.handle(page_task(), Parked({"x-retries": 2}).delivery)
    assert not [m for m in broker.published if isinstance(m, c.PageFailed | c.PageWaiting)]
    assert await calls_made(fake) == 1
