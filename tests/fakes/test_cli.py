"""Every fake starts from the command line, print where they listen, and take --fault."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def fake(module: str, *args: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.fakes.{module}", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline().strip()
        assert banner.startswith(f"fake {module} listening on http://127.0.0.1:"), banner
        yield banner.rsplit(" ", 1)[1].removesuffix("/v1")
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_moonshot_command_line() -> None:
    with fake("moonshot", "--api-key", "k", "--ttft", "0", "--fault", "quota:1") as url:
        assert url.count(":") == 2
        headers = {"Authorization": "Bearer k"}
        body = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(trust_env=False, timeout=10) as http:
            first = http.post(f"{url}/v1/chat/completions", json=body, headers=headers)
            assert first.status_code == 429
            assert first.json()["error"]["type"] == "exceeded_current_quota_error"
            second = http.post(f"{url}/v1/chat/completions", json=body, headers=headers)
            assert second.status_code == 200


def test_jimeng_command_line() -> None:
    args = ("--image-seconds", "0", "--dead-ids", "old", "--fault", "no_credits")
    with fake("jimeng", *args) as url, httpx.Client(trust_env=False, timeout=10) as http:
        assert http.get(f"{url}/ping").text == "pong"
        body = {"prompt": "x"}
        dead = http.post(
            f"{url}/v1/images/generations", json=body, headers={"Authorization": "Bearer old"}
        ).json()
        assert dead["code"] == -2002
        good = {"Authorization": "Bearer new"}
        assert http.post(f"{url}/v1/images/generations", json=body, headers=good).json()["code"] == -2009
        assert len(http.post(f"{url}/v1/images/generations", json=body, headers=good).json()["data"]) == 4


def test_unknown_fault_on_the_command_line_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.fakes.jimeng", "--port", "0", "--fault", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "unknown mode" in result.stderr


def test_ark_command_line() -> None:
    args = ("--image-seconds", "0", "--keys", "k1,k2", "--fault", "rate_limit")
    with fake("ark", *args) as url, httpx.Client(trust_env=False, timeout=10) as http:
        assert url.endswith("/api/v3")
        body = {"model": "doubao-seedream-4-0-250828", "prompt": "x"}
        generations = f"{url}/images/generations"
        refused = http.post(generations, json=body, headers={"Authorization": "Bearer k3"})
        assert refused.status_code == 401
        limited = http.post(generations, json=body, headers={"Authorization": "Bearer k2"})
        assert limited.status_code == 429
        assert http.post(generations, json=body, headers={"Authorization": "Bearer k1"}).status_code == 200
