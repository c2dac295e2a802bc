"""Two `make run` on one machine, told apart only by RABBITMQ_PREFIX and GATEWAY_PORT,
each play a story through their own gateway, and nothing crosses between them.

Processes: two launchers (`python -m services.devstack`, what `make run` runs), each
starting its gateway, workers and fakes on ports it picks; the real local RabbitMQ.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.common.amqp import delete_topology
from services.common.topology import Topology
from services.devstack.procs import free_port
from tests.support.broker import queue_counts
from tests.support.infra import unique
from tests.support.reader import AutoReader

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# What an install reads from its own environment; nothing of the test runner's leaks in.
OWN = (
    "MOONSHOT_API_KEY",
    "ARK_API_KEY",
    "JIMENG_SESSION_ID",
    "IMAGE_PROVIDER",
    "RABBITMQ_PREFIX",
    "GATEWAY_PORT",
    "LLM_OPS_PORT",
    "IMAGE_OPS_PORT",
    "DATABASE_URL",
    "MEDIA_DIR",
)


@dataclass
class Install:
    prefix: str
    port: int
    log: Path
    launcher: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def printed(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_running(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Interactive Storybook is running" in self.printed():
                return
            assert self.launcher.poll() is None, f"the launcher stopped:\n{self.printed()}"
            time.sleep(0.3)
        raise TimeoutError(f"not running after {timeout}s:\n{self.printed()}")

    def started(self) -> dict[str, str]:
        """name -> 'http://127.0.0.1:port  (pid N)', as the launcher printed them."""
        return dict(re.findall(r"^  (\S+)\s+(http://\S+\s+\(pid \d+\))$", self.printed(), re.MULTILINE))

    def stop(self) -> None:
        if self.launcher.poll() is None:
            self.launcher.send_signal(signal.SIGINT)
            try:
                self.launcher.wait(60)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
                self.launcher.wait()


def launch(amqp_url: str, home: Path) -> Install:
    home.mkdir(parents=True)
    prefix, port = unique("ttwo-"), free_port()
    env = {k: v for k, v in os.environ.items() if k not in OWN}
    env.update(
        PYTHONPATH=str(ROOT),
        RABBITMQ_URL=amqp_url,
        RABBITMQ_PREFIX=prefix,
        GATEWAY_PORT=str(port),
        STORY_PAGES="2",
        FAKE_SPEED="8",
        CREATE_PER_MINUTE="1000",
        PYTHONUNBUFFERED="1",
    )
    log = home / "launcher.log"
    with log.open("wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "services.devstack"],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Install(prefix, port, log, launcher)


@pytest.fixture
def installs(amqp_url: str, tmp_path: Path) -> Iterator[tuple[Install, Install]]:
    # Two installs: two folders (their own .env, database and media), one machine.
    one, two = launch(amqp_url, tmp_path / "one"), launch(amqp_url, tmp_path / "two")
    try:
        one.wait_running()
        two.wait_running()
        yield one, two
    finally:
        for install in (one, two):
            install.stop()
            asyncio.run(delete_topology(amqp_url, install.prefix))


async def test_two_installs_each_play_a_story_and_nothing_crosses(
    installs: tuple[Install, Install], amqp_url: str
) -> None:
    one, two = installs
    started = one.started(), two.started()
    for name in ("gateway", "llm_worker", "image_worker", "fake-moonshot", "fake-jimeng"):
        assert started[0][name] != started[1][name], f"both installs use the same {name}"

    readers = [AutoReader([i.url], premise="一只想去月亮上的小兔子", age=5) for i in installs]
    await asyncio.gather(*(r.play(limit=150) for r in readers))
    for reader in readers:
        figures = reader.figures()
        assert figures["pages_delivered"] == 2 and figures["pictures"] == 2, figures
        assert figures["duplicate_events"] == 0 and figures["missing_events"] == 0, figures

    async with httpx.AsyncClient(timeout=10) as http:
        for install, other in ((one, readers[1]), (two, readers[0])):
            story = f"{install.url}/api/stories/{other.reader.story_id}"
            answer = await http.get(story, headers=other.reader.auth)
            assert answer.status_code == 404, "one install's story is unknown to the other"
        for install in installs:
            moonshot = started[installs.index(install)]["fake-moonshot"].split()[0]
            stats = (await http.get(f"{moonshot}/_fake/stats")).json()
            assert stats["requests"] >= 3, "each install's pages were written by its own fake"

    for install in installs:
        topo = Topology(install.prefix)
        for queue in (topo.llm_queue.name, topo.image_queue.name, topo.results_queue.name):
            assert (await queue_counts(amqp_url, queue))[1] == 1, f"{queue}: one consumer, of its own install"
