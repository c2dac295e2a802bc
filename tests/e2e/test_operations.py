"""What an operator sees: refusals at start, readiness that means something, rotation.

The incident this project was born from: every container looked healthy while every
picture failed, because the session id never reached the image worker and nothing
said that the jimeng session had expired.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.common.amqp import Link
from services.common.contracts import JimengSessions
from services.common.control import send_sessions
from services.common.topology import Topology
from tests.support.reader import Reader, Reading
from tests.support.stack import ARTIFACTS, running_stack

pytestmark = pytest.mark.e2e

LIVE = "live-session-7a1b2c3d"
DEAD = "dead-session-9x8y7z6w"


def start_alone(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MOONSHOT_", "JIMENG_", "LLM_"))}
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/tmp",
    )


@pytest.mark.parametrize(
    "module, env, variable",
    [
        ("services.image_worker", {"JIMENG_API_URL": "http://127.0.0.1:9"}, "JIMENG_SESSION_ID is missing"),
        ("services.image_worker", {"JIMENG_SESSION_ID": "abcdef123456"}, "JIMENG_API_URL is missing"),
        ("services.llm_worker", {}, "MOONSHOT_API_KEY is missing"),
        (
            "services.llm_worker",
            {"MOONSHOT_API_KEY": "changeme"},
            "MOONSHOT_API_KEY is empty or a placeholder",
        ),
        ("services.gateway", {"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL must start with"),
    ],
)
def test_a_service_refuses_to_start_with_one_clear_line(
    module: str, env: dict[str, str], variable: str
) -> None:
    done = start_alone(module, env)
    assert done.returncode == 78
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and variable in lines[0] and "fix:" in lines[0], done.stderr


def test_secrets_are_not_echoed_when_a_setting_is_wrong() -> None:
    done = start_alone(
        "services.llm_worker",
        {"MOONSHOT_API_KEY": "sk-a-very-secret-key-0042", "MOONSHOT_BASE_URL": "moonshot.cn"},
    )
    assert done.returncode == 78 and "MOONSHOT_BASE_URL" in done.stderr
    assert "sk-a-very-secret-key-0042" not in done.stderr + done.stdout


async def test_expired_session_makes_the_image_worker_unready_and_rotation_fixes_it(
    amqp_url: str, tmp_path: Path
) -> None:
    with running_stack(
        amqp_url,
        tmp_path,
        name="ops-sessions",
        gateways=1,
        jimeng_seconds=0.5,
        jimeng_args=["--live-ids", LIVE],
        extra_env={"JIMENG_SESSION_ID": DEAD, "CREATE_PER_MINUTE": "1000"},
    ) as stack:
        ops = stack.ops_urls["image_worker"]
        async with httpx.AsyncClient(timeout=20) as http:
            ready = await http.get(f"{ops}/readyz")
            assert ready.status_code == 503
            reason = ready.json()["checks"]["sessions"]
            assert "…7z6w" in reason and DEAD not in reason and "jimeng-session set" in reason

            # A story meanwhile: its picture fails fast with a clear code, the text goes on.
            reader = Reader(stack.gateway_url)
            reading = Reading()
            try:
                await reader.start("一只会飞的小猪")
                await reader.read(reading, until=lambda m: m["type"] == "page.image.failed", limit=60)
                failed = reading.of("page.image.failed")[0]
                assert failed["error"]["code"] == "image_session_expired"

                async with Link(amqp_url) as link:
                    await send_sessions(
                        link, Topology(stack.config.prefix), JimengSessions(mode="set", ids=[LIVE])
                    )
                for _ in range(50):
                    if (await http.get(f"{ops}/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.2)
                assert (await http.get(f"{ops}/readyz")).json()["status"] == "ready"

                # No restart: the redraw uses the new id.
                r = await http.post(
                    f"{stack.gateway_url}/api/stories/{reader.story_id}/pages/0/image/retry",
                    headers=reader.auth,
                )
                assert r.status_code == 202
                await reader.read(reading, until=lambda m: m["type"] == "page.image.done", limit=60)
                stats = (await http.get(f"{stack.jimeng_url}/_fake/stats")).json()
                assert stats["sessions_used"].get(LIVE, 0) >= 1
            finally:
                await reader.close()
            metrics = (await http.get(f"{ops}/metrics")).text
            expired = re.search(r'storybook_pictures_total\{outcome="image_session_expired"\} (\d+)', metrics)
            assert expired and int(expired.group(1)) >= 1, "the failure is counted"
            assert 'storybook_jimeng_sessions{state="live"} 1.0' in metrics
        log = (ARTIFACTS / "logs" / "ops-sessions" / "image_worker.log").read_text()
        assert DEAD not in log and LIVE not in log, "session ids never appear in logs"


async def test_rejected_moonshot_key_makes_the_llm_worker_unready(amqp_url: str, tmp_path: Path) -> None:
    with running_stack(
        amqp_url,
        tmp_path,
        name="ops-key",
        gateways=1,
        moonshot_args=["--api-key", "sk-the-right-one-1234"],
    ) as stack:
        async with httpx.AsyncClient(timeout=20) as http:
            ready = await http.get(f"{stack.ops_urls['llm_worker']}/readyz")
            gateway = await http.get(f"{stack.gateway_url}/readyz")
    assert ready.status_code == 503
    reason = ready.json()["checks"]["moonshot"]
    assert "rejected with 401" in reason and "…-key" in reason and "sk-offline-fake-key" not in reason
    assert gateway.status_code == 200, "the gateway itself is fine"
