"""All checks, run concurrently, each bounded in time: the doctor never hangs."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable

from services.common.contracts import JimengSessions, SessionsEnvironment
from services.doctor import ark, broker, jimeng, moonshot, processes, shared, store
from services.doctor.environment import Environment
from services.doctor.report import Row

# A section makes several requests in turn (jimeng: ping, ids, credits; the broker:
# one declare per queue), each with its own short timeout; this bounds the section.
SECTION_FACTOR = 3
HANGING = "something on the way hangs: check the address in the detail and the service behind it"

Section = Awaitable[list[Row]]


async def run_checks(env: Environment, *, wait: float) -> list[Row]:
    limit = wait * SECTION_FACTOR
    probe = asyncio.create_task(_probe_broker(env, wait=wait, limit=limit))
    sections: list[Section] = [_broker_rows(probe)]
    if env.has("gateway"):
        sections += _gateway(env, wait=wait, limit=limit)
    if env.has("llm_worker"):
        sections += _llm(env, wait=wait, limit=limit)
    if env.has("image_worker"):
        sections += _image(env, probe, wait=wait, limit=limit)
    if redis_url := _redis_url(env):
        sections.append(_one("redis", shared.check_redis(redis_url, wait=wait), limit))
    results = await asyncio.gather(*sections)
    return [*env.rows, *(row for rows in results for row in rows)]


async def _probe_broker(env: Environment, *, wait: float, limit: float) -> broker.BrokerReport:
    try:
        async with asyncio.timeout(limit):
            return await broker.check_broker(env, wait=wait)
    except Exception as exc:
        return broker.BrokerReport([_failure("broker", exc, limit)])


async def _broker_rows(probe: Awaitable[broker.BrokerReport]) -> list[Row]:
    return (await probe).rows


async def _kept(
    probe: Awaitable[broker.BrokerReport],
) -> tuple[JimengSessions | None, SessionsEnvironment | None]:
    report = await probe
    return report.kept, report.environment


def _gateway(env: Environment, *, wait: float, limit: float) -> list[Section]:
    s = env.gateway
    if s is None:
        why = "gateway configuration is invalid (see config gateway)"
        return [_skipped("store", why), _skipped("gateway ready", why)]
    base = f"http://127.0.0.1:{s.gateway_port}"
    media = shared.check_media(s, service="gateway")
    return [
        _one("store", store.check_store(s.database_url, wait=wait), limit),
        _one(shared.media_check_name(s), media, limit),
        _one(
            "gateway ready", processes.check_ready("gateway", base, setting="GATEWAY_PORT", wait=wait), limit
        ),
        _one("port", processes.check_port(s.gateway_host, s.gateway_port, wait=wait), limit),
    ]


def _llm(env: Environment, *, wait: float, limit: float) -> list[Section]:
    check = processes.check_ready("llm_worker", env.llm_ops_url, setting="LLM_OPS_URL", wait=wait)
    ready = _one("llm_worker ready", check, limit)
    if env.llm is None:
        return [_skipped("moonshot", "llm_worker configuration is invalid (see config llm_worker)"), ready]
    return [_one("moonshot", moonshot.check_moonshot(env.llm, wait=wait), limit), ready]


def _image(
    env: Environment, probe: Awaitable[broker.BrokerReport], *, wait: float, limit: float
) -> list[Section]:
    check = processes.check_ready("image_worker", env.image_ops_url, setting="IMAGE_OPS_URL", wait=wait)
    ready = _one("image_worker ready", check, limit)
    s = env.image
    if s is None:
        why = "image_worker configuration is invalid (see config image_worker)"
        return [_skipped(env.doctor.image_check, why), ready]
    if s.provider == "ark":
        sections = [_one(ark.CHECK, ark.check_ark(s, wait=wait), limit)]
    else:
        jimeng_limit = max(limit, jimeng.SECTION_SECONDS)
        # Handed over unstarted: the check reads the kept command only once jimeng-api answers.
        kept = functools.partial(_kept, probe)
        sections = [_guard("jimeng-api", jimeng.check_jimeng(s, kept, wait=wait), jimeng_limit)]
    if not env.has("gateway"):  # otherwise the gateway's row is about the same store
        media = shared.check_media(s, service="image_worker")
        sections.append(_one(shared.media_check_name(s), media, limit))
    return [*sections, ready]


def _redis_url(env: Environment) -> str | None:
    """The Redis the workers share (the first configured service's REDIS_URL)."""
    for settings in (env.image, env.llm):
        if settings is not None and settings.redis_url:
            return settings.redis_url
    return None


async def _skipped(check: str, why: str) -> list[Row]:
    return [Row.skip(check, why)]


async def _one(check: str, work: Awaitable[Row], limit: float) -> list[Row]:
    async def rows() -> list[Row]:
        return [await work]

    return await _guard(check, rows(), limit)


async def _guard(check: str, work: Awaitable[list[Row]], limit: float) -> list[Row]:
    try:
        async with asyncio.timeout(limit):
            return await work
    except Exception as exc:
        return [_failure(check, exc, limit)]


def _failure(check: str, exc: Exception, limit: float) -> Row:
    if isinstance(exc, TimeoutError):
        return Row.fail(check, f"no answer within {limit:g} s", HANGING)
    # A doctor that crashes on a broken set-up would be of no use: say what broke instead.
    return Row.fail(check, f"the check itself failed: {type(exc).__name__}: {exc}"[:300], HANGING)
