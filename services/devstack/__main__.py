"""`make run`: the whole system on this machine, with offline fakes where no key is set.

python -m services.devstack
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from services.devstack.procs import Stack, StackConfig, broker_reachable, free_port, port_open

START_BROKER = """RabbitMQ is not reachable at {url}.
Start one, then run `make run` again:
  docker run -d --name rabbitmq -p 5672:5672 -p 15672:15672 rabbitmq:3-management
or on Debian/Ubuntu:  sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached
(or set RABBITMQ_URL in .env to a broker you have)."""


def _dotenv(path: Path = Path(".env")) -> dict[str, str]:
    """The few variables the launcher itself reads; each service reads .env on its own."""
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip().strip("'\"")
    return values


class Refused(Exception):
    """The launcher cannot start as configured; the message says what to change."""


def _port(env: dict[str, str], name: str, default: int | None) -> int:
    """The port `name` sets; unset, `default`, or a free port when there is none."""
    given = env.get(name, "").strip()
    if given:
        try:
            port = int(given)
        except ValueError:
            raise Refused(f"{name}={given!r} is not a port number: set it to one (1-65535).") from None
    elif default is None:
        return free_port()
    else:
        port = default
    if port_open("127.0.0.1", port):
        raise Refused(f"Port {port} is already in use: stop what holds it or set {name}.")
    return port


def configure(env: dict[str, str]) -> StackConfig:
    """Everything the launcher starts, from the environment and .env."""
    # The image provider the image_worker will use (its settings decide the same way).
    provider = env.get("IMAGE_PROVIDER") or ("ark" if env.get("ARK_API_KEY") else "jimeng")
    try:
        speed = float(env.get("FAKE_SPEED", "1") or 1)
    except ValueError:
        raise Refused(f"FAKE_SPEED={env['FAKE_SPEED']!r} is not a number: set it to 1 or more.") from None
    return StackConfig(
        rabbitmq_url=env.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        prefix=env.get("RABBITMQ_PREFIX", "storybook") or "storybook",
        # The reader's address does not move by itself: a busy port is an error.
        gateway_port=_port(env, "GATEWAY_PORT", 8000),
        # Unset, the ports beside the reader's are picked free (and printed): a fixed
        # default is taken by the first install, and two launchers race for it.
        llm_ops_port=_port(env, "LLM_OPS_PORT", None),
        image_ops_port=_port(env, "IMAGE_OPS_PORT", None),
        moonshot_port=_port(env, "FAKE_MOONSHOT_PORT", None),
        jimeng_port=_port(env, "FAKE_JIMENG_PORT", None),
        ark_port=_port(env, "FAKE_ARK_PORT", None),
        moonshot_ttft=0.8 / speed,
        moonshot_tps=25.0 * speed,
        jimeng_seconds=8.0 / speed,
        ark_seconds=8.0 / speed,
        database_url=env.get("DATABASE_URL", "sqlite+aiosqlite:///var/stories.db"),
        media_dir=Path(env.get("MEDIA_DIR", "var/media")),
        media_store=env.get("MEDIA_STORE") or None,
        redis_url=env.get("REDIS_URL") or None,
        story_pages=int(env.get("STORY_PAGES", "6")),
        use_fake_moonshot=not env.get("MOONSHOT_API_KEY"),
        use_fake_jimeng=provider == "jimeng" and not env.get("JIMENG_SESSION_ID"),
        use_fake_ark=provider == "ark" and not env.get("ARK_API_KEY"),
    )


def main() -> int:
    env = {**_dotenv(), **os.environ}
    url = env.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    if not broker_reachable(url):
        print(START_BROKER.format(url=url), file=sys.stderr)
        return 1
    try:
        config = configure(env)
    except Refused as exc:
        print(str(exc), file=sys.stderr)
        return 1
    stack = Stack(config, base_env=env)
    fakes = [
        n
        for n, on in (
            ("Moonshot", config.use_fake_moonshot),
            ("jimeng", config.use_fake_jimeng),
            ("Ark", config.use_fake_ark),
        )
        if on
    ]
    if fakes:
        print(f"No key for {' and '.join(fakes)}: using the offline fake(s).")
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        stack.start_all()
        for name, where in stack.listening().items():
            print(f"  {name:<14} {where}")
        print(f"\nInteractive Storybook is running: {stack.gateway_url}/   (Ctrl-C stops it)\n")
        while not stopping:
            if dead := stack.dead():
                print(f"{', '.join(dead)} stopped unexpectedly; stopping everything.", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"Could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        print("Stopping…")
        stack.stop_all()


if __name__ == "__main__":
    sys.exit(main())
