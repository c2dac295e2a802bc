"""CPU time and memory of processes from /proc (Linux), and the machine's CPU use.

No psutil: /proc/<pid>/stat gives user+system CPU ticks of all the process's
threads, /proc/<pid>/status its current (VmRSS) and peak (VmHWM) resident memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

TICK = float(os.sysconf("SC_CLK_TCK"))
CORES = os.cpu_count() or 1


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state is [0], ppid [1],
    utime [11], stime [12], cutime [13], cstime [14]); None once the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces: fields start after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of a process so far; None once it is gone."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of a server and its workers: its own, its live children's, and those of
    the children it has reaped (PostgreSQL forks a backend per connection)."""
    fields = _stat(pid)
    if fields is None:
        return None
    total = sum(int(v) for v in fields[11:15]) / TICK
    for child in _pids():
        if child != pid and (found := _stat(child)) is not None and int(found[1]) == pid:
            total += (int(found[11]) + int(found[12])) / TICK
    return total


def _named(command: str) -> list[int]:
    """The processes whose /proc/<pid>/comm is `command`, in /proc's order."""
    found = []
    for pid in _pids():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == command:
                found.append(pid)
    return found


def server_pid(command: str) -> int | None:
    """The parent process among those named `command` (a server that forks its workers)."""
    pids = _named(command)
    return next((pid for pid in pids if (f := _stat(pid)) is not None and int(f[1]) not in pids), None)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in KiB; empty once the process is gone."""
    out: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def nofile_limit(pid: int) -> int | None:
    """The soft 'Max open files' limit a process runs with."""
    try:
        lines = Path(f"/proc/{pid}/limits").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return int(soft) if soft.isdigit() else None
    return None


def raise_nofile() -> int:
    """Raise this process's soft open-files limit to the hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def find_pid(command: str) -> int | None:
    """The first process whose /proc/<pid>/comm is `command` (e.g. beam.smp for RabbitMQ)."""
    return next(iter(_named(command)), None)


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


@dataclass
class ProcessUse:
    """What one process used over a measured window."""

    cpu_s: float = 0.0
    cpu_pct: float = 0.0  # of one core, averaged over the window
    peak_cpu_pct: float = 0.0  # highest one-second CPU% seen while sampling
    peak_rss_mib: float = 0.0  # VmHWM: since the process started
    rss_mib: float = 0.0  # at the end of the window


@dataclass
class Meter:
    """Samples named processes once a second while a run goes; `stop()` reports their use."""

    pids: dict[str, int]
    interval: float = 1.0
    # Names whose CPU counts their worker processes too (tree_cpu_seconds).
    trees: frozenset[str] = frozenset()
    _start_cpu: dict[str, float] = field(default_factory=dict)
    _last_cpu: dict[str, float] = field(default_factory=dict)
    _peak: dict[str, float] = field(default_factory=dict)
    _start_machine: tuple[int, int] = (0, 0)
    _peak_machine: float = 0.0
    _started: float = 0.0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._start_machine = machine_busy_ticks()
        for name, pid in self.pids.items():
            self._start_cpu[name] = self._last_cpu[name] = self._cpu(name, pid) or 0.0
            self._peak[name] = 0.0
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        last_machine, last_at = machine_busy_ticks(), time.monotonic()
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            span = max(now - last_at, 1e-6)
            for name, pid in self.pids.items():
                cpu = self._cpu(name, pid)
                if cpu is None:
                    continue
                self._peak[name] = max(self._peak[name], 100 * (cpu - self._last_cpu[name]) / span)
                self._last_cpu[name] = cpu
            machine = machine_busy_ticks()
            total = max(machine[1] - last_machine[1], 1)
            self._peak_machine = max(self._peak_machine, 100 * (machine[0] - last_machine[0]) / total)
            last_machine, last_at = machine, now

    def _cpu(self, name: str, pid: int) -> float | None:
        return tree_cpu_seconds(pid) if name in self.trees else cpu_seconds(pid)

    async def stop(self) -> tuple[dict[str, ProcessUse], dict[str, float]]:
        """Per process use, and the machine's {cpu_pct, peak_cpu_pct, seconds} (of all cores)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        wall = max(time.monotonic() - self._started, 1e-6)
        uses: dict[str, ProcessUse] = {}
        for name, pid in self.pids.items():
            cpu = self._cpu(name, pid)
            spent = (cpu if cpu is not None else self._last_cpu[name]) - self._start_cpu[name]
            mem = memory_kib(pid)
            uses[name] = ProcessUse(
                cpu_s=round(spent, 2),
                cpu_pct=round(100 * spent / wall, 1),
                peak_cpu_pct=round(self._peak[name], 1),
                peak_rss_mib=round(mem.get("VmHWM", 0) / 1024, 1),
                rss_mib=round(mem.get("VmRSS", 0) / 1024, 1),
            )
        busy, total = machine_busy_ticks()
        spent_total = max(total - self._start_machine[1], 1)
        machine_pct = 100 * (busy - self._start_machine[0]) / spent_total
        ours = sum(use.cpu_pct for use in uses.values())
        machine = {
            "cpu_pct": round(machine_pct, 1),
            "peak_cpu_pct": round(self._peak_machine, 1),
            # CPU the machine spent on processes not measured here, % of one core.
            "others_pct": round(max(0.0, machine_pct * CORES - ours), 1),
            "seconds": round(wall, 2),
        }
        return uses, machine


async def machine_busy_pct(seconds: float) -> float:
    """How busy all cores are over the next `seconds`, in % of all cores."""
    busy0, total0 = machine_busy_ticks()
    await asyncio.sleep(seconds)
    busy1, total1 = machine_busy_ticks()
    return 100 * (busy1 - busy0) / max(total1 - total0, 1)


async def wait_quiet(limit: float, *, below: float = 15.0, window: float = 3.0) -> float:
    """Wait (at most `limit` seconds) until the machine is nearly idle; the last busy %."""
    deadline = time.monotonic() + limit
    busy = await machine_busy_pct(window)
    while busy >= below and time.monotonic() < deadline:
        busy = await machine_busy_pct(window)
    return busy
