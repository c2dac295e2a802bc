"""The command line: `python -m services.doctor [...]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from aiormq.exceptions import AMQPError
from pydantic import ValidationError

from services.common.logs import register_secrets, scrub
from services.common.settings import EX_CONFIG, ServiceSettings, describe_errors
from services.common.topology import Topology
from services.doctor import dead, report, sessions
from services.doctor.checks import run_checks
from services.doctor.environment import SERVICES, DoctorSettings, ServiceName, load, redact_url

DEFAULT_TIMEOUT = 3.0

EPILOG = """\
examples:
  python -m services.doctor                                  everything, from the host
  docker compose exec image_worker python -m services.doctor --service image_worker
  python -m services.doctor jimeng-session set NEWID1,NEWID2 rotate the jimeng session ids
  python -m services.doctor jimeng-session show              the ids last sent (masked)
  python -m services.doctor dead --limit 20                  why work died (left in place)

exit status: 0 when every check is ✓ or –, 1 when one is ✗."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.doctor",
        description="Check configuration, broker, store, Moonshot, jimeng-api and the running services; "
        "say how to fix what is broken. Secrets are never printed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--service", choices=SERVICES, help="only what this service needs (run it in its container)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request (default 3)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands (without one: run the checks)")

    js = sub.add_parser("jimeng-session", help="rotate or show the image workers' jimeng session ids")
    jsub = js.add_subparsers(dest="action", required=True, metavar="ACTION")
    for mode, what in (
        ("set", "replace every id"),
        ("add", "add ids to those in use"),
        ("remove", "stop using these ids"),
    ):
        one = jsub.add_parser(mode, help=what)
        one.add_argument("ids", nargs="+", metavar="ID", help="session ids, comma- or space-separated")
    jsub.add_parser("show", help="the latest command kept in the broker (masked)")

    dl = sub.add_parser("dead", help="list dead letters with their reasons, leaving them in place")
    dl.add_argument("--limit", type=_positive, default=20, help="at most this many (default 20)")
    dl.add_argument("--json", action="store_true", dest="dead_json", help="machine-readable output")
    return p


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Library loggers (aio-pika's reconnects, faststream) would only repeat our rows.
    logging.basicConfig(level=logging.CRITICAL)
    try:
        if args.command == "jimeng-session":
            return asyncio.run(_sessions(args))
        if args.command == "dead":
            return asyncio.run(_dead(args))
        return asyncio.run(_check(args.service, as_json=args.json, wait=args.timeout))
    except sessions.BrokerUnavailable as exc:
        print(f"✗ {exc}: start RabbitMQ or fix RABBITMQ_URL", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _check(service: ServiceName | None, *, as_json: bool, wait: float) -> int:
    env = load(service)
    rows = await run_checks(env, wait=wait)
    text = report.as_json(rows) if as_json else report.as_table(rows, report.Style.for_stream(sys.stdout))
    report.write(scrub(text))
    return report.exit_code(rows)


def _common() -> ServiceSettings | None:
    register_secrets(DoctorSettings().secrets())
    try:
        return ServiceSettings()
    except ValidationError as exc:
        for line in describe_errors(exc, service="doctor"):
            print(line, file=sys.stderr)
        return None


async def _sessions(args: argparse.Namespace) -> int:
    common = _common()
    if common is None:
        return EX_CONFIG
    if args.action == "show":
        return await sessions.show(common, wait=args.timeout)
    ids = sessions.split_ids(args.ids)
    if not ids:
        print("no session id given", file=sys.stderr)
        return 2
    url = DoctorSettings().jimeng_api_url
    return await sessions.send(common, args.action, ids, jimeng_url=url, wait=args.timeout)


async def _dead(args: argparse.Namespace) -> int:
    common = _common()
    if common is None:
        return EX_CONFIG
    name = Topology(common.rabbitmq_prefix).dead_queue.name
    try:
        total, letters = await dead.read_dead(common, limit=args.limit, wait=args.timeout)
    except dead.Missing:
        print(f"{name} does not exist: start the services once (they declare it)", file=sys.stderr)
        return 1
    except (OSError, TimeoutError, AMQPError) as exc:
        where = redact_url(common.rabbitmq_url)
        raise sessions.BrokerUnavailable(f"cannot connect to {where}: {type(exc).__name__}") from None
    output = dead.as_json(name, total, letters) if args.dead_json else dead.as_table(name, total, letters)
    report.write(scrub(output))
    return 0
