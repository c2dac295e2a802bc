"""`python -m services.doctor`: every broken part is a ✗ with its fix, a healthy set-up is
all ✓, secrets never appear, and the session rotation round-trips through the broker."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from fastapi import FastAPI

from services.common.settings import mask
from services.common.topology import Topology
from services.fakes import jimeng
from services.fakes.serving import BackgroundServer
from tests.doctor.conftest import (
    DEAD_ID,
    KEY,
    LIVE_ID,
    OTHER_LIVE_ID,
    WRONG_KEY,
    closed_port,
    doctor,
    service_app,
)
from tests.support.broker import queue_depth


async def publish_dead(url: str, prefix: str, *, story_id: str, reason: str, code: str) -> None:
    """A dead letter as the consumer (services.common.consumer) writes it."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(Topology(prefix).dead_exchange.name)
        body = json.dumps({"story_id": story_id, "page": 2, "prompt": "a rabbit"}).encode()
        headers = {"x-reason": reason, "x-error-code": code, "x-source": "image.tasks", "story_id": story_id}
        message = aio_pika.Message(body, headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, routing_key="")


async def leave(message: AbstractIncomingMessage) -> None:
    await message.nack(requeue=True)


@pytest.fixture
async def consumers(amqp_url: str, prefix: str) -> AsyncIterator[None]:
    """Something consuming each work queue, as the running services would."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in Topology(prefix).work_queue_names:
            queue = await channel.declare_queue(name, passive=True)
            await queue.consume(leave)
        yield


async def test_missing_session_id_in_the_image_worker(
    base_env: dict[str, str], prefix: str, jimeng_url: str, tmp_path: Path
) -> None:
    # The incident: the id was set on jimeng-api's container, not the image_worker's.
    env = {**base_env, "RABBITMQ_PREFIX": prefix, "JIMENG_API_URL": jimeng_url}
    run, table = await asyncio.gather(
        doctor("--service", "image_worker", "--json", env=env, cwd=tmp_path),
        doctor("--service", "image_worker", env=env, cwd=tmp_path),
    )

    assert run.code == 1, run.out + run.err
    config = run.row("config image_worker")
    assert config["status"] == "fail"
    assert "JIMENG_SESSION_ID is missing" in config["detail"]
    assert any("in the image_worker's environment" in fix for fix in config["fix"])
    assert run.row("jimeng-api")["status"] == "skip"
    # Only this service is looked at: the others' settings are not its business.
    assert not {"config gateway", "config llm_worker", "moonshot", "store"} & run.checks()
    assert run.row("queue image.tasks")["status"] == "fail"  # nobody draws
    assert run.row("queue llm.tasks")["status"] == "ok"  # not judged from in here
    assert run.row("image_worker ready")["detail"].startswith("not running")

    assert table.code == 1
    assert "✗" in table.out and "To fix:" in table.out and "JIMENG_SESSION_ID" in table.out
    assert "\033[" not in table.out  # not a terminal: no colours


async def test_broken_set_up_says_each_problem_without_leaking_secrets(
    base_env: dict[str, str],
    amqp_url: str,
    prefix: str,
    jimeng_url: str,
    moonshot_url: str,
    serve: Callable[[FastAPI], BackgroundServer],
    tmp_path: Path,
) -> None:
    await publish_dead(
        amqp_url, prefix, story_id="s-dead-1", reason="image_failed: boom", code="image_failed"
    )
    image_ops = serve(service_app({"broker": "ok", "sessions": "no live jimeng session id"}))
    env = {
        **base_env,
        "RABBITMQ_PREFIX": prefix,
        "MOONSHOT_API_KEY": WRONG_KEY,
        "MOONSHOT_BASE_URL": moonshot_url,
        "JIMENG_API_URL": jimeng_url,
        "JIMENG_SESSION_ID": f"{LIVE_ID},{DEAD_ID}",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/stories",
        "GATEWAY_PORT": jimeng_url.rsplit(":", 1)[1],  # taken by another program
        "IMAGE_OPS_URL": image_ops.url,
    }
    run, table = await asyncio.gather(doctor("--json", env=env, cwd=tmp_path), doctor(env=env, cwd=tmp_path))

    assert run.code == 1
    run.assert_no_secret()
    assert run.report()["ok"] is False

    moon = run.row("moonshot")
    assert moon["status"] == "fail"
    assert f"key rejected ({mask(WRONG_KEY)})" in moon["detail"] and "api.moonshot.ai" in moon["detail"]

    dead = run.row(f"jimeng session {mask(DEAD_ID)}")
    assert dead["status"] == "fail" and "expired" in dead["detail"]
    assert "jimeng-session set" in dead["fix"][0] and "sessionid" in dead["fix"][0]
    live = run.row(f"jimeng session {mask(LIVE_ID)}")
    assert live["status"] == "ok" and live["detail"].startswith("can draw, 80 credits")

    for queue, service in (
        ("llm.tasks", "llm_worker"),
        ("image.tasks", "image_worker"),
        ("gateway.results", "gateway"),
    ):
        row = run.row(f"queue {queue}")
        assert row["status"] == "fail" and f"no {service}" in row["detail"], row
    letters = run.row("queue dead")
    assert letters["status"] == "fail" and letters["detail"].startswith("1 dead letter")
    assert "services.doctor dead" in letters["fix"][0]

    assert run.row("store")["status"] == "fail"
    port = run.row(f"port {env['GATEWAY_PORT']}")
    assert port["status"] == "fail" and "held by something else" in port["detail"]
    not_ready = run.row("image_worker ready")
    assert not_ready["status"] == "fail" and "no live jimeng session id" in not_ready["detail"]
    assert run.row("llm_worker ready")["detail"].startswith("not running")
    assert run.seconds < 20

    assert table.code == 1
    table.assert_no_secret()
    assert "To fix:" in table.out and f"key rejected ({mask(WRONG_KEY)})" in table.out


async def test_healthy_set_up_is_all_green(
    base_env: dict[str, str],
    prefix: str,
    consumers: None,
    jimeng_url: str,
    moonshot_url: str,
    serve: Callable[[FastAPI], BackgroundServer],
    pg_admin_url: str,
    tmp_path: Path,
) -> None:
    gateway = serve(service_app({"broker": "ok", "store": "ok", "media": "ok"}))
    llm_ops = serve(service_app({"broker": "ok", "moonshot": "ok"}))
    image_ops = serve(service_app({"broker": "ok", "jimeng": "ok", "sessions": "ok"}))
    env = {
        **base_env,
        "RABBITMQ_PREFIX": prefix,
        "MOONSHOT_API_KEY": KEY,
        "MOONSHOT_BASE_URL": moonshot_url,
        # A loopback base URL is never proxied, and stray proxy variables are not used.
        "LLM_PROXY": f"socks5://127.0.0.1:{closed_port()}",
        "HTTPS_PROXY": f"http://127.0.0.1:{closed_port()}",
        "JIMENG_API_URL": jimeng_url,
        "JIMENG_SESSION_ID": f"{LIVE_ID},{OTHER_LIVE_ID}",
        "DATABASE_URL": pg_admin_url,
        "GATEWAY_PORT": str(gateway.port),
        "LLM_OPS_URL": llm_ops.url,
        "IMAGE_OPS_URL": image_ops.url,
    }
    run, table = await asyncio.gather(doctor("--json", env=env, cwd=tmp_path), doctor(env=env, cwd=tmp_path))

    failing = [r for r in run.report()["checks"] if r["status"] != "ok"]
    assert run.code == 0 and not failing, failing
    run.assert_no_secret()
    assert "balance 49.59" in run.row("moonshot")["detail"]
    assert "HTTPS_PROXY in the environment is not used" in run.row("moonshot")["detail"]
    assert run.row(f"port {gateway.port}")["detail"].startswith("held by our gateway")
    assert "write ok" in run.row("store")["detail"]
    assert run.row("queue llm.tasks")["detail"] == "0 waiting, 1 consumer(s)"
    assert {f"jimeng session {mask(LIVE_ID)}", f"jimeng session {mask(OTHER_LIVE_ID)}"} <= run.checks()

    assert table.code == 0 and "✗" not in table.out.split("\n\n")[0]
    assert "all good" in table.out and "To fix" not in table.out
    table.assert_no_secret()


async def test_session_rotation_round_trips_through_the_broker(
    base_env: dict[str, str], amqp_url: str, prefix: str, jimeng_url: str, tmp_path: Path
) -> None:
    env = {**base_env, "RABBITMQ_PREFIX": prefix, "JIMENG_API_URL": jimeng_url}
    sent = await doctor("jimeng-session", "set", f"{OTHER_LIVE_ID},{DEAD_ID}", env=env, cwd=tmp_path)
    assert sent.code == 0, sent.err
    sent.assert_no_secret()
    assert f"sent to the image workers: set {mask(OTHER_LIVE_ID)}, {mask(DEAD_ID)}" in sent.out
    assert f"{mask(OTHER_LIVE_ID)} can draw (80 credits)" in sent.out
    assert f"WARNING: {mask(DEAD_ID)} is expired" in sent.out

    shown = await doctor("jimeng-session", "show", env=env, cwd=tmp_path)
    assert shown.code == 0, shown.err
    shown.assert_no_secret()
    assert f"latest command: set {mask(OTHER_LIVE_ID)}, {mask(DEAD_ID)}" in shown.out
    assert await queue_depth(amqp_url, Topology(prefix).sessions_queue.name) == 1  # still kept

    # The doctor checks the ids the image workers now use, not the stale variable.
    checked = await doctor(
        "--service", "image_worker", "--json", env={**env, "JIMENG_SESSION_ID": LIVE_ID}, cwd=tmp_path
    )
    assert f"jimeng session {mask(LIVE_ID)}" not in checked.checks()
    dead = checked.row(f"jimeng session {mask(DEAD_ID)}")
    assert dead["status"] == "fail" and "(from `jimeng-session set` at 20" in dead["detail"]
    assert checked.row("queue control.jimeng-sessions")["detail"].endswith("(jimeng-session show)")
    checked.assert_no_secret()


async def test_dead_letters_are_listed_and_left_in_place(
    base_env: dict[str, str], amqp_url: str, prefix: str, tmp_path: Path
) -> None:
    await publish_dead(amqp_url, prefix, story_id="s-one", reason="image_timeout: slow", code="image_timeout")
    await publish_dead(amqp_url, prefix, story_id="s-two", reason="malformed: 1 problem", code="malformed")
    env = {**base_env, "RABBITMQ_PREFIX": prefix}
    name = Topology(prefix).dead_queue.name

    listed = await doctor("dead", "--limit", "5", env=env, cwd=tmp_path)
    assert listed.code == 0, listed.err
    assert f"{name}: 2 message(s), showing 2 (left in place)" in listed.out
    for text in ("s-one", "image_timeout: slow", "s-two", "malformed", "image.tasks"):
        assert text in listed.out

    as_json = await doctor("dead", "--limit", "1", "--json", env=env, cwd=tmp_path)
    body = json.loads(as_json.out)
    assert body["messages"] == 2 and len(body["shown"]) == 1
    assert body["shown"][0] == {
        "source": "image.tasks",
        "code": "image_timeout",
        "story_id": "s-one",
        "page": "2",
        "reason": "image_timeout: slow",
    }
    assert await queue_depth(amqp_url, name) == 2


async def test_an_unreachable_broker_fails_fast(base_env: dict[str, str], tmp_path: Path) -> None:
    env = {**base_env, "RABBITMQ_URL": f"amqp://guest:s3cret-pass@127.0.0.1:{closed_port()}/"}
    run = await doctor("--service", "gateway", "--json", env=env, cwd=tmp_path)
    assert run.code == 1
    broker = run.row("broker")
    assert broker["status"] == "fail" and "cannot connect to amqp://guest:***@127.0.0.1" in broker["detail"]
    assert "s3cret-pass" not in run.out
    assert run.seconds < 10


async def test_an_id_without_credits_fails_the_check_with_its_own_fix(
    base_env: dict[str, str], prefix: str, serve: Callable[[FastAPI], BackgroundServer], tmp_path: Path
) -> None:
    url = serve(jimeng.create_app(jimeng.JimengConfig(image_seconds=0.0, broke_ids=frozenset({DEAD_ID})))).url
    env = {
        **base_env,
        "RABBITMQ_PREFIX": prefix,
        "JIMENG_API_URL": url,
        "JIMENG_SESSION_ID": f"{DEAD_ID},{LIVE_ID}",
    }
    run = await doctor("--service", "image_worker", "--json", env=env, cwd=tmp_path)
    assert run.code == 1
    broke = run.row(f"jimeng session {mask(DEAD_ID)}")
    assert broke["status"] == "fail" and "no credits" in broke["detail"]
    assert "daily free credits" in broke["fix"][0] and "skip" in broke["fix"][0]
    assert run.row(f"jimeng session {mask(LIVE_ID)}")["status"] == "ok"
    run.assert_no_secret()


async def test_an_unreachable_jimeng_is_an_outage_not_a_bad_id(
    base_env: dict[str, str], prefix: str, serve: Callable[[FastAPI], BackgroundServer], tmp_path: Path
) -> None:
    # The real server needs ~15 s to say it cannot reach jimeng; here 4.5 s, more than the
    # doctor's default 3 s wait: it must still wait for the answer.
    config = jimeng.JimengConfig(image_seconds=0.0, upstream_down=True, time_scale=0.3)
    url = serve(jimeng.create_app(config)).url
    env = {**base_env, "RABBITMQ_PREFIX": prefix, "JIMENG_API_URL": url, "JIMENG_SESSION_ID": LIVE_ID}
    run = await doctor("--service", "image_worker", "--json", env=env, cwd=tmp_path)
    assert run.code == 1
    outage = run.row("jimeng upstream")
    assert outage["status"] == "fail" and "cannot reach jimeng" in outage["detail"]
    assert "ENOTFOUND" in outage["detail"] and "not the problem" in outage["fix"][0]
    assert f"jimeng session {mask(LIVE_ID)}" not in run.checks(), "no id is called expired"
    assert "expired" not in run.out and "JIMENG_API_URL is jimeng-api" not in run.out
    run.assert_no_secret()


async def test_two_runs_leave_the_store_as_they_found_it_and_warn_of_nothing(
    base_env: dict[str, str], prefix: str, tmp_path: Path
) -> None:
    # A jimeng-api that does not answer: the check stops before it reads the broker's
    # kept session command, which used to be left as a coroutine never awaited.
    database = tmp_path / "stories.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE stories (id TEXT PRIMARY KEY)")
        db.execute("INSERT INTO stories VALUES ('kept')")

    def tables() -> list[str]:
        with sqlite3.connect(database) as db:
            return [r[0] for r in db.execute("SELECT name FROM sqlite_master ORDER BY name")]

    before = tables()
    env = {
        **base_env,
        "RABBITMQ_PREFIX": prefix,
        "JIMENG_API_URL": f"http://127.0.0.1:{closed_port()}",
        "JIMENG_SESSION_ID": LIVE_ID,
    }
    for _ in range(2):
        run = await doctor("--json", env=env, cwd=tmp_path)
        assert run.row("store")["status"] == "ok", run.out
        assert run.row("jimeng-api")["status"] == "fail"
        assert "Warning" not in run.err and "never awaited" not in run.err, run.err
    assert tables() == before, "the probe left something behind"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT id FROM stories").fetchall() == [("kept",)]
