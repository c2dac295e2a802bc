"""The doctor's pieces that need no network: the table, the ids it checks, URLs without passwords."""

from __future__ import annotations

import pytest

from services.common.contracts import JimengSessions
from services.doctor.environment import redact_url
from services.doctor.jimeng import effective
from services.doctor.report import Row, Status, Style, as_table, exit_code
from services.image_worker.jimeng import SessionPool

MARKS = {Status.OK: "✓", Status.FAIL: "✗", Status.SKIP: "–"}
ROWS = [
    Row.ok("broker", "connected"),
    Row.fail("queue llm.tasks", "no consumer", "start the llm_worker"),
    Row.fail("queue image.tasks", "no consumer", "start the image_worker"),
    Row.fail("queue x", "missing", "start the services once"),
    Row.fail("queue y", "missing", "start the services once"),
    Row.skip("moonshot", "llm_worker configuration is invalid"),
]


def test_table_is_aligned_coloured_on_a_terminal_and_lists_each_fix_once() -> None:
    plain = as_table(ROWS, Style(color=False, marks=MARKS, width=None))
    lines = plain.splitlines()
    assert lines[0].startswith("CHECK") and "DETAIL" in lines[0]
    assert {line.index("  ", len("queue image.tasks")) for line in lines[2:8]} == {len("queue image.tasks")}
    assert "\033[" not in plain
    assert " 3. [queue x, queue y] start the services once" in plain
    assert "6 checks: 1 ✓, 4 ✗, 1 – (something needs fixing)" in plain

    coloured = as_table(ROWS, Style(color=True, marks=MARKS, width=None))
    assert "\033[32m✓" in coloured and "\033[31m✗" in coloured
    assert exit_code(ROWS) == 1 and exit_code([ROWS[0], ROWS[-1]]) == 0


@pytest.mark.parametrize(
    ("mode", "ids"),
    [("set", ["n1", "n2"]), ("add", ["e2", "n1"]), ("remove", ["e1"])],
)
def test_the_ids_checked_are_the_ones_the_image_worker_uses(mode: str, ids: list[str]) -> None:
    command = JimengSessions.model_validate({"mode": mode, "ids": ids})
    pool = SessionPool(["e1", "e2"])
    pool.apply(command.mode, command.ids)
    assert effective(["e1", "e2"], command).ids == pool.ids
    assert effective(["e1"], None).source == "JIMENG_SESSION_ID"


def test_urls_lose_their_password() -> None:
    assert redact_url("amqp://guest:s3cret@rabbitmq:5672/vh") == "amqp://guest:***@rabbitmq:5672/vh"
    assert redact_url("postgresql+asyncpg://u:p@db/x") == "postgresql+asyncpg://u:***@db/x"
    assert redact_url("socks5://127.0.0.1:1080") == "socks5://127.0.0.1:1080"
