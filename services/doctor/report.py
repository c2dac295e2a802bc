"""Rows of the doctor's table, and the two ways to print them: for people and for machines."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TextIO


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Row:
    """One check: its name, the verdict, what was seen and, for a failure, what to do."""

    check: str
    status: Status
    detail: str
    fix: tuple[str, ...] = ()

    @classmethod
    def ok(cls, check: str, detail: str) -> Row:
        return cls(check, Status.OK, detail)

    @classmethod
    def fail(cls, check: str, detail: str, *fix: str) -> Row:
        return cls(check, Status.FAIL, detail, tuple(fix))

    @classmethod
    def skip(cls, check: str, why: str) -> Row:
        return cls(check, Status.SKIP, why)


def exit_code(rows: Sequence[Row]) -> int:
    return 1 if any(r.status is Status.FAIL for r in rows) else 0


# ------------------------------------------------------------------ for machines


def as_json(rows: Sequence[Row]) -> str:
    counts = Counter(r.status.value for r in rows)
    body = {
        "ok": exit_code(rows) == 0,
        "summary": {s.value: counts.get(s.value, 0) for s in Status},
        "checks": [
            {"check": r.check, "status": r.status.value, "detail": r.detail, "fix": list(r.fix)} for r in rows
        ],
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


# ------------------------------------------------------------------ for people

_GREEN, _RED, _DIM, _BOLD, _RESET = "\033[32m", "\033[31m", "\033[2m", "\033[1m", "\033[0m"


@dataclass(frozen=True)
class Style:
    color: bool
    marks: dict[Status, str]
    width: int | None  # wrap details to this many columns (None: never wrap)

    @classmethod
    def for_stream(cls, stream: TextIO) -> Style:
        tty = stream.isatty()
        color = tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        return cls(color, _marks(stream), shutil.get_terminal_size().columns if tty else None)

    def paint(self, text: str, status: Status) -> str:
        if not self.color:
            return text
        code = {Status.OK: _GREEN, Status.FAIL: _RED, Status.SKIP: _DIM}[status]
        return f"{code}{text}{_RESET}"

    def bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if self.color else text


def _marks(stream: TextIO) -> dict[Status, str]:
    """✓ ✗ – where the terminal can show them (a container with LANG=C may not)."""
    try:
        "✓✗–…".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return {Status.OK: "OK", Status.FAIL: "XX", Status.SKIP: "-"}
    return {Status.OK: "✓", Status.FAIL: "✗", Status.SKIP: "–"}


def as_table(rows: Sequence[Row], style: Style) -> str:
    name_w = max([len("CHECK"), *(len(r.check) for r in rows)])
    mark_w = max(len(m) for m in style.marks.values())
    indent = name_w + mark_w + 4
    lines = [style.bold(f"{'CHECK':<{name_w}}  {'':<{mark_w}}  DETAIL"), "-" * (indent + 40)]
    for row in rows:
        mark = style.paint(f"{style.marks[row.status]:<{mark_w}}", row.status)
        detail = _wrap(row.detail, style.width, indent)
        lines.append(f"{row.check:<{name_w}}  {mark}  {detail}")
    lines.append("")
    lines.append(_summary(rows, style))
    fixes = to_fix(rows)
    if fixes:
        lines += ["", style.bold("To fix:")]
        for n, (fix, checks) in enumerate(fixes.items(), start=1):
            named = ", ".join(checks[:3]) + (f" and {len(checks) - 3} more" if len(checks) > 3 else "")
            lines.append(_wrap(f"{n:>2}. [{named}] {fix}", style.width, 6))
    return "\n".join(lines)


def to_fix(rows: Sequence[Row]) -> dict[str, list[str]]:
    """Each distinct fix once, with the checks it fixes, in the order they failed."""
    fixes: dict[str, list[str]] = {}
    for row in rows:
        if row.status is Status.FAIL:
            for fix in row.fix:
                fixes.setdefault(fix, []).append(row.check)
    return fixes


def _summary(rows: Sequence[Row], style: Style) -> str:
    counts = Counter(r.status for r in rows)
    parts = [style.paint(f"{counts.get(s, 0)} {style.marks[s]}", s) for s in Status]
    verdict = "all good" if exit_code(rows) == 0 else "something needs fixing"
    return f"{len(rows)} checks: {', '.join(parts)} ({verdict})"


def _wrap(text: str, width: int | None, indent: int) -> str:
    if width is None or len(text) + indent <= width:
        return text
    body = textwrap.wrap(text, width=max(40, width - indent), break_on_hyphens=False)
    return ("\n" + " " * indent).join(body)


def write(text: str, stream: TextIO = sys.stdout) -> None:
    stream.write(text + "\n")
    stream.flush()
