"""The capacity runs: does one worker process keep all of its concurrency busy?

Two targets of the benchmark issue that no reader run shows:

- one image_worker keeps N slow jimeng calls in flight (IMAGE_CONCURRENCY=N, the fake
  jimeng taking `capacity_image_seconds` a picture) without missing broker heartbeats.
  Its connection asks for a HEARTBEAT-second heartbeat, so an event loop blocked for a
  few seconds would really miss some and RabbitMQ would close the connection: the same
  connection still open afterwards, and no "missed heartbeats" line in RabbitMQ's log,
  mean none was missed;
- one llm_worker keeps all of its LLM_CONCURRENCY=K chat streams busy while a backlog
  of 2K more pages waits.

Each part runs on its own stack without the gateway: the bench publishes valid tasks of
made-up stories to the work exchange, as publish_work does, and consumes
gateway.results itself to count what came back.

Requests in flight are read at the fakes, which count the ones they are serving and
keep the integral of that count over time (services.fakes.serving.InFlight), with the
integral's value at the first and the latest request start. A mean over a window is
Δ integral / Δ time: exact, not sampled. The bench also polls /_fake/stats every POLL
seconds, to end the image window at the last poll before any picture came back and for
a coarse timeline. The fakes' clock is time.monotonic(), which on Linux is one clock
for every process of the machine, so their times compare with the bench's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage

from bench.options import Options, masked
from bench.probes import Probes
from bench.procstat import Meter, find_pid, wait_quiet
from bench.reader import premise
from bench.stack import BenchStack, StackSpec, running
from services.common import contracts as c
from services.common.topology import Topology
from services.fakes import storytext
from services.llm_worker import prompts

log = logging.getLogger("bench")

POLL = 0.1  # seconds between reads of a fake's /_fake/stats
HEARTBEAT = 5  # seconds: the image_worker's AMQP heartbeat in the capacity run
BACKLOG = 3  # the llm part queues BACKLOG x LLM_CONCURRENCY pages at once
SETTLE = 1.0  # seconds to wait after the last result, for a late duplicate to show
PUBLISH_TIMEOUT = 60.0
RABBITMQCTL_TIMEOUT = 30.0
RABBIT_LOG = Path("/var/log/rabbitmq/rabbit@localhost.log")
MISSED = "missed heartbeats"
_LOG_PID = re.compile(r"\] (<[\d.]+>) ")  # the Erlang process a RabbitMQ log line is from

IMAGE_DONE = ("image.ready", "image.failed")
PAGE_DONE = ("page.text.done", "page.failed")


# ------------------------------------------------------------------------ the tasks


def image_tasks(n: int) -> list[c.ImageTask]:
    """N page pictures of N made-up stories, none waiting for a character sheet."""
    return [
        c.ImageTask(
            story_id=str(uuid.uuid4()),
            page=0,
            prompt=f"Picture book illustration {k}: a small hedgehog with a red scarf in a quiet forest",
            kind="page",
            use_sheet=False,
        )
        for k in range(n)
    ]


def brief(n: int) -> c.StoryBrief:
    return c.StoryBrief(premise=premise(n), age=6, language="zh", style="watercolor", total_pages=3)


@cache
def outline(n: int) -> c.Outline:
    """The outline the fake Moonshot writes for brief(n), asked of its own code: a page
    task built on it gets a valid page from the fake."""
    asked = prompts.outline_messages(c.OutlineTask(story_id="capacity", brief=brief(n)))[-1]["content"]
    return c.Outline.model_validate_json(storytext.answer(asked, json_mode=True))


def page_tasks(n: int) -> list[c.PageTask]:
    """First pages of N made-up stories: one chat stream each (no typed idea to judge).
    The premises vary, so the pages' lengths do and the streams do not end in lockstep."""
    return [
        c.PageTask(story_id=str(uuid.uuid4()), page=0, brief=brief(k), outline=outline(k)) for k in range(n)
    ]


def named_url(url: str, *, name: str, heartbeat: int | None = None) -> str:
    """The broker URL with a connection name (shown by rabbitmqctl) and, if given, the
    AMQP heartbeat the client asks for; aio-pika/aiormq read both from the query."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | {"name": name}
    if heartbeat is not None:
        query["heartbeat"] = str(heartbeat)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def publish(url: str, prefix: str, tasks: Sequence[c.Contract], routing_key: str) -> float:
    """Every task persistent to the work exchange, all at once, each confirmed; the seconds it took."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(Topology(prefix).work_exchange.name)
        started = time.monotonic()
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            task.model_dump_json().encode(),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            headers={"story_id": str(getattr(task, "story_id", ""))},
                        ),
                        routing_key=routing_key,
                    )
                    for task in tasks
                )
            )
        return time.monotonic() - started


# ------------------------------------------------------------------------ what comes back


@dataclass
class ResultCount:
    """gateway.results of a stack without its gateway, consumed by the bench.

    Every kind is counted; finished work (`done` kinds) by (story, page), so a task that
    was redelivered and done twice shows as a duplicate."""

    url: str
    prefix: str
    done: tuple[str, ...]
    expected: int
    kinds: Counter[str] = field(default_factory=Counter)
    finished: Counter[tuple[str, int]] = field(default_factory=Counter)
    last_at: float | None = None  # monotonic: when the last new piece of work finished
    _all: asyncio.Event = field(default_factory=asyncio.Event)
    _connection: aio_pika.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self.url)
        channel = await self._connection.channel()
        queue = await channel.declare_queue(Topology(self.prefix).results_queue.name, passive=True)
        await queue.consume(self._on_result, no_ack=True)

    async def _on_result(self, message: AbstractIncomingMessage) -> None:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            body = json.loads(message.body)
            kind = str(body.get("kind"))
            self.kinds[kind] += 1
            if kind in self.done:
                key = (str(body.get("story_id")), int(body.get("page", 0)))
                if key not in self.finished:
                    self.last_at = time.monotonic()
                self.finished[key] += 1
                if len(self.finished) >= self.expected:
                    self._all.set()

    async def wait(self, limit: float) -> bool:
        """Until every task has finished, for at most `limit` seconds; whether they all did."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all.wait(), limit)
        return self._all.is_set()

    async def stop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kinds": dict(self.kinds),
            "finished": len(self.finished),
            "duplicates": sum(count - 1 for count in self.finished.values()),
        }


# ------------------------------------------------------------------------ the fakes' counts


@dataclass(frozen=True)
class Poll:
    """One read of a fake's in-flight count; `started`: its upstream requests so far."""

    at: float  # the fake's time.monotonic()
    in_flight: int
    area: float  # request-seconds served so far
    started: int


def jimeng_started(stats: dict[str, Any]) -> int:
    calls = stats.get("requests") or {}
    return int(calls.get("generations", 0)) + int(calls.get("compositions", 0))


def moonshot_started(stats: dict[str, Any]) -> int:
    return int(stats.get("requests", 0))


def poll_of(stats: dict[str, Any], started: Callable[[dict[str, Any]], int]) -> Poll:
    return Poll(stats["clock"], stats["in_flight"], stats["in_flight_seconds"], started(stats))


@dataclass
class FakeWatch:
    """A fake's /_fake/stats, read every POLL seconds while a part runs."""

    url: str
    started: Callable[[dict[str, Any]], int]
    polls: list[Poll] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    self.last = (await http.get(f"{self.url}/_fake/stats")).json()
                    self.polls.append(poll_of(self.last, self.started))
                await asyncio.sleep(POLL)

    async def stop(self) -> dict[str, Any]:
        """Stop polling; the fake's stats now (the last poll's if it does not answer)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
                self.last = (await http.get(f"{self.url}/_fake/stats")).json()
        return self.last


def mean_between(start: dict[str, float] | Poll | None, end: dict[str, float] | Poll | None) -> float | None:
    """Time-weighted mean in flight between two marks of the fake's integral."""
    if start is None or end is None:
        return None
    t0, a0 = (start.at, start.area) if isinstance(start, Poll) else (start["at"], start["in_flight_seconds"])
    t1, a1 = (end.at, end.area) if isinstance(end, Poll) else (end["at"], end["in_flight_seconds"])
    return (a1 - a0) / (t1 - t0) if t1 > t0 else None


def timeline(polls: list[Poll], since: float) -> list[int]:
    """In flight at each whole second after `since` (the last poll before it)."""
    out: list[int] = []
    second, last = 1, 0
    for poll in polls:
        while poll.at >= since + second:
            out.append(last)
            second += 1
        last = poll.in_flight
    return out


def reached(stats: dict[str, Any], polls: list[Poll], n: int) -> float | None:
    """When n were first in flight at once: the fake's exact moment if n was its peak,
    else the first poll that saw n (the peak went higher, e.g. with redelivered calls)."""
    if stats.get("peak_in_flight") == n:
        return stats.get("peak_in_flight_at")
    return next((p.at for p in polls if p.in_flight >= n), None)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------------ the broker's view


@dataclass(frozen=True)
class BrokerConnection:
    """One AMQP connection as RabbitMQ sees it (rabbitmqctl list_connections)."""

    pid: str
    connected_at: int
    heartbeat_s: int  # the timeout RabbitMQ and the client agreed on
    recv_cnt: int  # frames received from the client
    state: str


async def rabbitmqctl(*args: str) -> str:
    """Output of one rabbitmqctl command (run as root, on the broker's machine)."""
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RABBITMQCTL_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"rabbitmqctl did not answer in {RABBITMQCTL_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl failed: {err.decode(errors='replace').strip()[:200]}")
    return out.decode()


def _client_name(properties: list[Any]) -> str | None:
    for item in properties:
        if isinstance(item, list) and len(item) == 3 and item[0] == "connection_name":
            return str(item[2])
    return None


async def broker_connection(name: str) -> tuple[BrokerConnection | None, str]:
    """The connection whose client named itself `name`, or None and why not."""
    columns = ["name", "pid", "client_properties", "timeout", "recv_cnt", "connected_at", "state"]
    try:
        out = await rabbitmqctl("-q", "list_connections", "--formatter", "json", *columns)
        rows = json.loads(out or "[]")
    except (OSError, RuntimeError, ValueError) as exc:
        return None, f"cannot list the broker's connections: {exc}"
    for row in rows:
        if _client_name(row.get("client_properties") or []) == name:
            found = BrokerConnection(
                pid=str(row["pid"]),
                connected_at=int(row["connected_at"]),
                heartbeat_s=int(row["timeout"]),
                recv_cnt=int(row["recv_cnt"]),
                state=str(row["state"]),
            )
            return found, ""
    return None, f"no connection named {name}"


def log_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def missed_heartbeats(path: Path, since: int | None, name: str) -> dict[str, int] | None:
    """Connections RabbitMQ closed for missed heartbeats after byte `since` of its log: all,
    and ours; None when the log cannot be read.

    RabbitMQ logs the close on two lines of the connection's Erlang process: "closing AMQP
    connection <pid> (... - <name>):" then "missed heartbeats from client, timeout: 5s"."""
    if since is None:
        return None
    try:
        with path.open("rb") as f:
            f.seek(since)
            new = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None

    def pid(line: str) -> str | None:
        found = _LOG_PID.search(line)
        return found.group(1) if found else None

    named = {pid(line) for line in new if name in line} - {None}
    missed = [pid(line) for line in new if MISSED in line]
    return {"all": len(missed), "ours": sum(1 for p in missed if p in named)}


@dataclass
class HeartbeatWatch:
    """The worker's broker connection before and after the run, and RabbitMQ's log between."""

    name: str
    before: BrokerConnection | None = None
    after: BrokerConnection | None = None
    why: str = ""
    log_from: int | None = None
    missed: dict[str, int] | None = None

    async def start(self) -> None:
        self.before, self.why = await broker_connection(self.name)
        self.log_from = await asyncio.to_thread(log_size, RABBIT_LOG)

    async def stop(self) -> None:
        self.after, why = await broker_connection(self.name)
        self.why = self.why or why
        self.missed = await asyncio.to_thread(missed_heartbeats, RABBIT_LOG, self.log_from, self.name)

    def as_dict(self) -> dict[str, Any]:
        # The same connection (process and start time) still running: never closed meanwhile.
        kept: bool | None = None
        if self.before is not None:
            after, before = self.after, self.before
            kept = (
                after is not None
                and after.state == "running"
                and (after.pid, after.connected_at) == (before.pid, before.connected_at)
            )
        return {
            "name": self.name,
            "heartbeat_asked_s": HEARTBEAT,
            "before": None if self.before is None else asdict(self.before),
            "after": None if self.after is None else asdict(self.after),
            "kept": kept,
            "why": self.why,
            "log": str(RABBIT_LOG),
            "missed_heartbeats": self.missed,
        }


# ------------------------------------------------------------------------ one part


@dataclass
class Drive:
    """What a part saw around its tasks, from publishing the first one."""

    t0: float  # monotonic: publishing began
    publish_s: float = 0.0
    all_done: bool = False
    polls: list[Poll] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # the fake's, at the end
    results: dict[str, Any] = field(default_factory=dict)
    wall_s: float | None = None  # t0 -> the last task finished
    probes: dict[str, Any] = field(default_factory=dict)
    processes: dict[str, dict[str, float]] = field(default_factory=dict)
    machine: dict[str, float] = field(default_factory=dict)


def _pids(stack: BenchStack) -> dict[str, int]:
    pids = stack.pids()
    rabbit = find_pid("beam.smp")
    if rabbit is not None:
        pids["rabbitmq (shared)"] = rabbit
    return pids


async def drive(
    stack: BenchStack,
    tasks: Sequence[c.Contract],
    *,
    routing_key: str,
    fake_url: str,
    started: Callable[[dict[str, Any]], int],
    done: tuple[str, ...],
    limit: float,
) -> Drive:
    """Publish the tasks at once and wait (at most `limit` s) until each has its result,
    watching the fake, the worker's event loop and the processes meanwhile."""
    results = ResultCount(stack.rabbitmq_url, stack.prefix, done, expected=len(tasks))
    await results.start()
    watch = FakeWatch(fake_url, started)
    probes = Probes(dict(stack.stack.ops_urls), stack.rabbitmq_url, stack.prefix)
    meter = Meter(_pids(stack))
    watch.start()
    probes.start()
    meter.start()
    run = Drive(t0=time.monotonic())
    try:
        run.publish_s = await publish(stack.rabbitmq_url, stack.prefix, tasks, routing_key)
        run.all_done = await results.wait(limit)
        if not run.all_done:
            log.error("capacity: %d of %d tasks finished in %.0f s", len(results.finished), len(tasks), limit)
        await asyncio.sleep(SETTLE)
    finally:
        run.stats = await watch.stop()
        run.polls = watch.polls
        run.probes = await probes.stop()
        uses, run.machine = await meter.stop()
        run.processes = {name: asdict(use) for name, use in uses.items()}
        await results.stop()
    run.results = results.as_dict()
    run.wall_s = _round(results.last_at - run.t0) if results.last_at is not None else None
    return run


# ------------------------------------------------------------------------ the image part


def image_spec(options: Options, url: str) -> StackSpec:
    return StackSpec(
        llm_workers=0,
        image_workers=1,
        image_concurrency=options.capacity_images,
        gateway=False,
        latency=replace(options.latency, image_seconds=options.capacity_image_seconds),
        env={"RABBITMQ_URL": url},
    )


async def image_capacity(options: Options) -> dict[str, Any]:
    """N slow pictures asked at once of one image_worker with IMAGE_CONCURRENCY=N."""
    n = options.capacity_images
    name = f"bench-capacity-image-{uuid.uuid4().hex[:8]}"
    spec = image_spec(options, named_url(options.rabbitmq_url, name=name, heartbeat=HEARTBEAT))
    async with running(spec, rabbitmq_url=options.rabbitmq_url, keep_logs=options.keep_logs) as stack:
        log.info(
            "capacity: %d pictures of %.0f s at once on one image_worker (heartbeat %d s) on %s",
            n,
            options.capacity_image_seconds,
            HEARTBEAT,
            stack.prefix,
        )
        busy_before = await wait_quiet(options.quiet_wait)
        heartbeats = HeartbeatWatch(name)
        await heartbeats.start()
        run = await drive(
            stack,
            image_tasks(n),
            routing_key=Topology.image_key,
            fake_url=stack.stack.jimeng_url,
            started=jimeng_started,
            done=IMAGE_DONE,
            limit=options.run_timeout,
        )
        await heartbeats.stop()
    out = image_figures(n, options.capacity_image_seconds, run)
    out["broker"] = heartbeats.as_dict()
    out["machine"]["busy_before_pct"] = round(busy_before, 1)
    out["spec"] = _spec_dict(spec)
    return out


def image_figures(n: int, seconds: float, run: Drive) -> dict[str, Any]:
    """Peak, how soon all N were in flight, and the mean until the first picture came back."""
    stats = run.stats
    first = stats.get("first_start")
    all_at = reached(stats, run.polls, n)
    # The last poll before any call had finished: the window in which all should be held.
    holding = [p for p in run.polls if first is not None and p.at > first["at"] and p.started == p.in_flight]
    end = holding[-1] if holding else None
    calls = jimeng_started(stats)
    kinds = run.results.get("kinds", {})
    return {
        "tasks": n,
        "concurrency": n,
        "image_seconds": seconds,
        "publish_s": _round(run.publish_s),
        "all_done": run.all_done,
        "wall_s": run.wall_s,
        "peak_in_flight": int(stats.get("peak_in_flight", 0)),
        "first_call_s": _round(first["at"] - run.t0) if first else None,
        "all_in_flight_s": _round(all_at - run.t0) if all_at is not None else None,
        "mean_in_flight": _round(mean_between(first, end)),
        "mean_window_s": _round(end.at - first["at"]) if end is not None and first is not None else None,
        "jimeng_calls": calls,
        "calls_beyond_tasks": calls - n,
        "pictures": int(kinds.get("image.ready", 0)),
        "failed": int(kinds.get("image.failed", 0)),
        "duplicates": run.results.get("duplicates", 0),
        "results": run.results,
        "timeline": timeline(run.polls, run.t0),
        "probes": run.probes,
        "processes": run.processes,
        "machine": run.machine,
    }


# ------------------------------------------------------------------------ the llm part


def llm_spec(options: Options) -> StackSpec:
    """MOONSHOT_CONCURRENCY is LLM_CONCURRENCY (the stack's default) and the RPM budget
    is off: the worker's own concurrency is what is measured."""
    return StackSpec(
        llm_workers=1,
        image_workers=0,
        llm_concurrency=options.capacity_llm,
        gateway=False,
        latency=options.latency,
    )


async def llm_capacity(options: Options) -> dict[str, Any]:
    """BACKLOG x K first pages queued at once for one llm_worker with LLM_CONCURRENCY=K."""
    k = options.capacity_llm
    spec = llm_spec(options)
    async with running(spec, rabbitmq_url=options.rabbitmq_url, keep_logs=options.keep_logs) as stack:
        log.info("capacity: %d pages at once for one llm_worker of concurrency %d", BACKLOG * k, k)
        busy_before = await wait_quiet(options.quiet_wait)
        run = await drive(
            stack,
            page_tasks(BACKLOG * k),
            routing_key=Topology.llm_key,
            fake_url=stack.stack.moonshot_url.removesuffix("/v1"),
            started=moonshot_started,
            done=PAGE_DONE,
            limit=options.run_timeout,
        )
    out = llm_figures(k, run)
    out["machine"]["busy_before_pct"] = round(busy_before, 1)
    out["spec"] = _spec_dict(spec)
    return out


def llm_figures(k: int, run: Drive) -> dict[str, Any]:
    """Peak, and the time-weighted mean from the first stream's start to the last one's:
    until the last start some page was still waiting, so all K should have been busy."""
    stats = run.stats
    first, last = stats.get("first_start"), stats.get("last_start")
    mean = mean_between(first, last)
    streams = moonshot_started(stats)
    in_window = [p for p in run.polls if first and last and first["at"] <= p.at <= last["at"]]
    stream_s = stats.get("in_flight_seconds", 0.0) / streams if streams else None
    kinds = run.results.get("kinds", {})
    done = int(kinds.get("page.text.done", 0))
    return {
        "concurrency": k,
        "tasks": BACKLOG * k,
        "publish_s": _round(run.publish_s),
        "all_done": run.all_done,
        "wall_s": run.wall_s,
        "peak_in_flight": int(stats.get("peak_in_flight", 0)),
        "mean_in_flight": _round(mean),
        "busy_share": _round(mean / k, 4) if mean is not None else None,
        "window_s": _round(last["at"] - first["at"]) if first and last else None,
        # Sampled, for comparison: the share of polls in the window that saw all K busy.
        "all_busy_polls_share": (
            _round(sum(1 for p in in_window if p.in_flight >= k) / len(in_window), 3) if in_window else None
        ),
        "streams": streams,
        "streams_beyond_tasks": streams - BACKLOG * k,
        "mean_stream_s": _round(stream_s, 3),
        "pages": done,
        "failed": int(kinds.get("page.failed", 0)),
        "duplicates": run.results.get("duplicates", 0),
        "pages_per_s": _round(done / run.wall_s, 3) if run.wall_s else None,
        # What K streams back to back would do: the pages' own pace, no gaps.
        "ideal_pages_per_s": _round(k / stream_s, 3) if stream_s else None,
        "results": run.results,
        "timeline": timeline(run.polls, run.t0),
        "probes": run.probes,
        "processes": run.processes,
        "machine": run.machine,
    }


def _spec_dict(spec: StackSpec) -> dict[str, Any]:
    out = asdict(spec)
    out["env"] = {key: masked(value) if key == "RABBITMQ_URL" else value for key, value in spec.env.items()}
    return out
