"""What a cProfile dump says: the functions that took a process's time."""

from __future__ import annotations

import pstats
from pathlib import Path
from typing import Any


def _where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({name})"


# Where an event loop waits for work: idle time, not work (uvloop's wait shows up
# as the own time of asyncio.run, being C code).
IDLE = ("<method 'poll' of 'select.epoll' objects>)", "asyncio/runners.py:86(run)")


def top(path: Path, count: int = 15) -> dict[str, Any]:
    """The `count` functions with the most own time (waiting for events left out)."""
    stats = pstats.Stats(str(path))
    rows = {_where(func): row for func, row in stats.stats.items()}  # type: ignore[attr-defined]
    idle = sum(row[2] for where, row in rows.items() if where.endswith(IDLE))
    busy = sum(row[2] for row in rows.values()) - idle
    ranked = sorted(((w, r) for w, r in rows.items() if not w.endswith(IDLE)), key=lambda kv: -kv[1][2])
    return {
        "busy_s": round(busy, 2),
        "idle_s": round(idle, 2),
        "top": [
            {"function": where, "calls": calls, "own_s": round(own, 3), "cumulative_s": round(cum, 3)}
            for where, (_, calls, own, cum, _) in ranked[:count]
        ],
    }


def summarize(directory: Path) -> dict[str, Any]:
    return {p.stem: top(p) for p in sorted(directory.glob("*.prof")) if p.stat().st_size > 0}


def render(profiles: dict[str, Any], count: int = 10) -> list[str]:
    lines = ["", "F. PROFILES (cProfile, diagnostic run: own time per function)"]
    for name, data in profiles.items():
        lines.append(f"  {name}: {data['busy_s']:.1f} s busy, {data['idle_s']:.1f} s waiting for events")
        for row in data["top"][:count]:
            lines.append(f"    {row['own_s']:8.2f} s {row['calls']:>9}  {row['function'][:80]}")
    return lines
