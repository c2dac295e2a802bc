"""Start the whole system as processes: gateway, both workers and, where no real
upstream is configured, the fakes (Moonshot, and jimeng-api or Ark). Used by `make run`
and by the end-to-end tests.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import psutil

# The key the Ark fake accepts when it stands in for Ark.
ARK_FAKE_KEY = "ark-offline-fake-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listens(proc: Proc, port: int) -> bool:
    """Does `proc` itself listen on `port`? Answering is not enough: another install's
    service (or anything else) on the same port answers too."""
    if proc.popen is None:
        return False
    try:
        sockets = psutil.Process(proc.popen.pid).net_connections(kind="inet")
    except psutil.Error:
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr and s.laddr.port == port for s in sockets)


def broker_reachable(url: str) -> bool:
    parts = urlsplit(url)
    return port_open(parts.hostname or "127.0.0.1", parts.port or 5672)


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when its parent dies, so no service is orphaned."""
    if sys.platform == "linux":
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> Proc:
        out: IO[bytes] | int | None = None
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
            out = self._log
        self.popen = subprocess.Popen(
            [sys.executable, *self.args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: the crash a chaos test wants, no goodbye."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_http(url: str, *, timeout: float, proc: Proc | None = None) -> None:
    """Wait until `url` answers 200, and, given `proc`, until it is `proc` that answers."""
    deadline = time.monotonic() + timeout
    last = ""
    port = urlsplit(url).port
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive:
            where = f"its log, {proc.log_path}" if proc.log_path else "its output above"
            raise RuntimeError(f"{proc.name} exited while starting (see {where})")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    if proc is None or port is None or listens(proc, port):
                        return
                    last = f"port {port} answers, but not from the {proc.name} started here"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s: {last}")


@dataclass
class StackConfig:
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    prefix: str = "storybook"
    gateway_port: int = 8000
    database_url: str = "sqlite+aiosqlite:///var/stories.db"
    media_dir: Path = Path("var/media")
    # Where pictures live instead of media_dir: s3://<bucket>/<prefix> (with
    # S3_ENDPOINT_URL and the AWS_* keys in the environment) or file:<dir>.
    media_store: str | None = None
    # The Redis every worker shares (claims, fleet-wide budgets); None: none.
    redis_url: str | None = None
    log_dir: Path | None = None
    story_pages: int = 6
    # Fakes: started when the real upstream is not configured.
    use_fake_moonshot: bool = True
    use_fake_jimeng: bool = True
    # The Ark fake instead of jimeng's: the image_worker draws with IMAGE_PROVIDER=ark.
    use_fake_ark: bool = False
    moonshot_port: int = 8101
    jimeng_port: int = 5100
    ark_port: int = 8102
    moonshot_ttft: float = 0.8
    moonshot_tps: float = 25.0
    jimeng_seconds: float = 8.0
    jimeng_url_ttl: float = 3 * 3600.0
    # The fake's failure timings as a share of the real server's (15 s, 30 s).
    jimeng_time_scale: float = 1.0
    ark_seconds: float = 8.0
    ark_url_ttl: float = 24 * 3600.0
    gateways: int = 1
    moonshot_args: list[str] = field(default_factory=list)
    jimeng_args: list[str] = field(default_factory=list)
    ark_args: list[str] = field(default_factory=list)
    llm_ops_port: int = 8011
    image_ops_port: int = 8012
    extra_env: dict[str, str] = field(default_factory=dict)


class Stack:
    def __init__(self, config: StackConfig, base_env: dict[str, str] | None = None) -> None:
        self.config = config
        self.base_env = dict(base_env if base_env is not None else os.environ)
        self.procs: dict[str, Proc] = {}
        self.ops_urls: dict[str, str] = {}

    # -------------------------------------------------------------- urls
    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port}"

    def gateway_url_of(self, n: int) -> str:
        return f"http://127.0.0.1:{self.config.gateway_port + n}"

    @property
    def moonshot_url(self) -> str:
        return f"http://127.0.0.1:{self.config.moonshot_port}/v1"

    @property
    def jimeng_url(self) -> str:
        return f"http://127.0.0.1:{self.config.jimeng_port}"

    @property
    def ark_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ark_port}/api/v3"

    @property
    def ark_fake_url(self) -> str:
        """Where the Ark fake's own routes (/_fake/...) are."""
        return f"http://127.0.0.1:{self.config.ark_port}"

    # -------------------------------------------------------------- env
    def service_env(self) -> dict[str, str]:
        cfg = self.config
        env = dict(self.base_env)
        env.update(
            RABBITMQ_URL=cfg.rabbitmq_url,
            RABBITMQ_PREFIX=cfg.prefix,
            DATABASE_URL=cfg.database_url,
            MEDIA_DIR=str(cfg.media_dir),
            STORY_PAGES=str(cfg.story_pages),
            PYTHONUNBUFFERED="1",
        )
        if cfg.media_store:
            env["MEDIA_STORE"] = cfg.media_store
        if cfg.redis_url:
            env["REDIS_URL"] = cfg.redis_url
        if cfg.use_fake_moonshot:
            env.update(MOONSHOT_BASE_URL=self.moonshot_url, MOONSHOT_API_KEY="sk-offline-fake-key")
        if cfg.use_fake_ark:
            env.update(IMAGE_PROVIDER="ark", ARK_BASE_URL=self.ark_url, ARK_API_KEY=ARK_FAKE_KEY)
        elif cfg.use_fake_jimeng:
            env.update(
                IMAGE_PROVIDER="jimeng",
                JIMENG_API_URL=self.jimeng_url,
                JIMENG_SESSION_ID="offline-fake-session",
            )
        if cfg.use_fake_ark or cfg.use_fake_jimeng:
            # The fake serves its pictures from loopback, which downloads refuse by default.
            allowed = [a for a in env.get("IMAGE_FETCH_ALLOW", "").split(",") if a.strip()]
            env["IMAGE_FETCH_ALLOW"] = ",".join([*allowed, "127.0.0.1/32"])
        if cfg.use_fake_moonshot or cfg.use_fake_jimeng or cfg.use_fake_ark:
            env.setdefault("APP_ENV", "development")
        env.update(cfg.extra_env)
        return env

    def _log(self, name: str) -> Path | None:
        if self.config.log_dir is None:
            return None
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        return self.config.log_dir / f"{name}.log"

    # -------------------------------------------------------------- processes
    def start_fakes(self) -> None:
        cfg = self.config
        if cfg.use_fake_moonshot:
            self._spawn(
                "fake-moonshot",
                [
                    "-m",
                    "services.fakes.moonshot",
                    "--port",
                    str(cfg.moonshot_port),
                    "--ttft",
                    str(cfg.moonshot_ttft),
                    "--tps",
                    str(cfg.moonshot_tps),
                    *cfg.moonshot_args,
                ],
            )
        if cfg.use_fake_ark:
            self._spawn(
                "fake-ark",
                [
                    "-m",
                    "services.fakes.ark",
                    "--port",
                    str(cfg.ark_port),
                    "--image-seconds",
                    str(cfg.ark_seconds),
                    "--url-ttl",
                    str(cfg.ark_url_ttl),
                    "--keys",
                    ARK_FAKE_KEY,
                    *cfg.ark_args,
                ],
            )
        elif cfg.use_fake_jimeng:
            self._spawn(
                "fake-jimeng",
                [
                    "-m",
                    "services.fakes.jimeng",
                    "--port",
                    str(cfg.jimeng_port),
                    "--image-seconds",
                    str(cfg.jimeng_seconds),
                    "--url-ttl",
                    str(cfg.jimeng_url_ttl),
                    "--time-scale",
                    str(cfg.jimeng_time_scale),
                    *cfg.jimeng_args,
                ],
            )
        if cfg.use_fake_moonshot:
            self._wait_port("fake-moonshot", cfg.moonshot_port)
        if cfg.use_fake_ark:
            self._wait_port("fake-ark", cfg.ark_port)
        elif cfg.use_fake_jimeng:
            wait_http(f"{self.jimeng_url}/ping", timeout=30, proc=self.procs["fake-jimeng"])

    def _wait_port(self, name: str, port: int, timeout: float = 30) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive:
                raise RuntimeError(f"{name} exited while starting (is port {port} taken?)")
            if listens(proc, port):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{name} did not open port {port}")

    def start_gateway(self, n: int = 0) -> Proc:
        env = self.service_env()
        env["GATEWAY_PORT"] = str(self.config.gateway_port + n)
        env.setdefault("GATEWAY_HOST", "127.0.0.1")
        name = "gateway" if n == 0 else f"gateway-{n}"
        proc = self._spawn(name, ["-m", "services.gateway"], env)
        wait_http(f"{self.gateway_url_of(n)}/readyz", timeout=60, proc=proc)
        return proc

    def start_worker(self, kind: str, n: int = 0) -> Proc:
        """Start a worker and wait until its ops port answers /healthz."""
        name = kind if n == 0 else f"{kind}-{n}"
        base = self.config.llm_ops_port if kind == "llm_worker" else self.config.image_ops_port
        port = base if n == 0 else free_port()
        env = self.service_env()
        env["LLM_OPS_PORT" if kind == "llm_worker" else "IMAGE_OPS_PORT"] = str(port)
        env.setdefault("OPS_HOST", "127.0.0.1")
        proc = self._spawn(name, ["-m", f"services.{kind}"], env)
        self.ops_urls[name] = f"http://127.0.0.1:{port}"
        wait_http(f"{self.ops_urls[name]}/healthz", timeout=60, proc=proc)
        return proc

    def start_all(self) -> None:
        self.start_fakes()
        for n in range(self.config.gateways):
            self.start_gateway(n)
        self.start_worker("llm_worker")
        self.start_worker("image_worker")

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        if (old := self.procs.get(name)) is not None:
            old.stop()  # a restart under the same name: the old one is gone or goes now
        proc = Proc(name, args, env or self.service_env(), self._log(name)).start()
        self.procs[name] = proc
        return proc

    def listening(self) -> dict[str, str]:
        """Each process started, where it answers and its pid (for the operator)."""
        ports = {
            "gateway": self.config.gateway_port,
            "fake-moonshot": self.config.moonshot_port,
            "fake-jimeng": self.config.jimeng_port,
            "fake-ark": self.config.ark_port,
        }
        found = {}
        for name, proc in self.procs.items():
            port = ports.get(name) or urlsplit(self.ops_urls.get(name, "")).port
            pid = proc.popen.pid if proc.popen is not None else "?"
            found[name] = f"http://127.0.0.1:{port}  (pid {pid})" if port else f"(pid {pid})"
        return found

    def stop_all(self) -> None:
        # Services first, fakes last, so nothing logs a spurious upstream failure.
        order = sorted(self.procs.values(), key=lambda p: p.name.startswith("fake"))
        for proc in order:
            proc.stop()

    def dead(self) -> list[str]:
        return [p.name for p in self.procs.values() if not p.alive]
