"""jimeng-api: is it there, can it reach jimeng, can every session id draw?

jimeng-api reads no session variable: the image_worker sends the ids. The ids
checked are the ones the image_worker uses: JIMENG_SESSION_ID, or the operator's
session command kept in the broker (`jimeng-session set/add/remove`) when it is
newer than the last change of JIMENG_SESSION_ID.

Each id is judged by `/token/points`, not `/token/check`: the real server answers
`live: false` to /token/check for any failure, its own outage included, so that
answer cannot tell an expired id from an unreachable jimeng. /token/points says
-2002 for an expired id, the credits left for a live one, and -1000 after ~15 s when
jimeng-api cannot reach jimeng, which is an outage, not a bad id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from services.common.contracts import JimengSessions, SessionsEnvironment
from services.common.control import fingerprint, sent_by
from services.common.settings import FIXES, mask
from services.doctor.report import Row, Status
from services.image_worker.config import ImageSettings
from services.image_worker.jimeng import POINTS_TIMEOUT, Points, read_points

ROTATE = (
    "get a new sessionid from jimeng.jianying.com (log in, cookie `sessionid`) and run "
    "`python -m services.doctor jimeng-session set <ids>`"
)
NO_CREDITS = (
    "wait for the daily free credits or buy credits at jimeng.jianying.com; the image workers skip this "
    "id until it has credits again. Or remove it: `python -m services.doctor jimeng-session remove <id>`"
)
OUTAGE = (
    "jimeng-api's container must reach jimeng.jianying.com: check its DNS, network, proxy and firewall "
    "(the session ids are not the problem); `docker compose logs jimeng-api` shows its own errors"
)
# The longest a jimeng section may take: a credit check of the real server needs ~15 s
# to report that it cannot reach jimeng.
SECTION_SECONDS = POINTS_TIMEOUT + 10.0


@dataclass(frozen=True)
class Sessions:
    ids: list[str]
    source: str


def effective(
    env_ids: list[str], kept: JimengSessions | None, environment: SessionsEnvironment | None = None
) -> Sessions:
    """The ids an image_worker uses: the kept command unless JIMENG_SESSION_ID changed after
    it was sent (as image_worker.providers.adopt_kept_sessions decides)."""
    since, note = 0.0, ""
    if environment is not None:
        mine = fingerprint(env_ids)
        seen = {**environment.seen, environment.fingerprint: environment.since}
        if mine in seen:
            since = seen[mine]
        else:  # this environment is newer than anything the workers have seen
            since, note = time.time(), " (not what the image workers started with: restart them)"
    if kept is None:
        return Sessions(env_ids, f"JIMENG_SESSION_ID{note}")
    if kept.at < since:
        return Sessions(env_ids, f"JIMENG_SESSION_ID{note}, changed after {sent_by(kept)}, which is not used")
    ids = [i.strip() for i in kept.ids if i.strip()]
    if kept.mode == "set":
        return Sessions(ids, sent_by(kept))
    if kept.mode == "add":
        return Sessions(
            [*env_ids, *(i for i in ids if i not in env_ids)], f"JIMENG_SESSION_ID + {sent_by(kept)}"
        )
    return Sessions([i for i in env_ids if i not in ids], f"JIMENG_SESSION_ID - {sent_by(kept)}")


def client(wait: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=wait, trust_env=False)


async def check_jimeng(
    settings: ImageSettings,
    kept: Callable[[], Awaitable[tuple[JimengSessions | None, SessionsEnvironment | None]]],
    *,
    wait: float,
) -> list[Row]:
    url = settings.jimeng_api_url
    assert url is not None  # asked only when the provider is jimeng, which requires it
    async with client(wait) as http:
        ping = await check_ping(http, url)
        if ping.status is not Status.OK:
            return [ping, Row.skip("jimeng sessions", "jimeng-api does not answer")]
        command, environment = await kept()
        sessions = effective(settings.session_ids, command, environment)
        if not sessions.ids:
            return [ping, _no_ids(sessions)]
        answers = await check_ids(http, url, sessions.ids)
    outage = [a.unreachable for a in answers.values() if a.unreachable]
    if outage and len(outage) == len(answers):
        return [ping, Row.fail("jimeng upstream", f"jimeng-api cannot reach jimeng: {outage[0]}", OUTAGE)]
    rows = [ping, *(_session_row(sid, answer, sessions.source) for sid, answer in answers.items())]
    if not any(answer.credits for answer in answers.values()):
        rows.append(Row.fail("jimeng sessions", f"no session id can draw ({sessions.source})", ROTATE))
    return rows


async def check_ping(http: httpx.AsyncClient, url: str) -> Row:
    try:
        resp = await http.get(f"{url}/ping")
    except httpx.TimeoutException:
        return _unreachable(url, "did not answer /ping in time")
    except (httpx.HTTPError, OSError) as exc:
        return _unreachable(url, f"unreachable ({type(exc).__name__})")
    if resp.status_code == 200 and resp.text.strip() == "pong":
        return Row.ok("jimeng-api", f"{url}/ping answers pong")
    said = resp.text.strip().replace("\n", " ")[:80]
    return Row.fail(
        "jimeng-api",
        f"something else answers at {url}: /ping gave HTTP {resp.status_code} {said!r}, not 'pong'",
        f"JIMENG_API_URL: {FIXES['JIMENG_API_URL']}; this port belongs to another program",
    )


async def check_ids(http: httpx.AsyncClient, url: str, ids: list[str]) -> dict[str, Points]:
    """Each id's credits, or that it expired, or why jimeng-api could not say."""
    answers = await asyncio.gather(*(_check_one(http, url, sid) for sid in ids))
    return dict(zip(ids, answers, strict=True))


async def _check_one(http: httpx.AsyncClient, url: str, sid: str) -> Points:
    # As long as the real server may take to say it cannot reach jimeng, whatever --timeout says.
    try:
        resp = await http.post(
            f"{url}/token/points",
            headers={"Authorization": f"Bearer {sid}"},
            timeout=max(http.timeout.read or 0.0, POINTS_TIMEOUT),
        )
        return read_points(resp.json())
    except httpx.TimeoutException:
        return Points(unreachable=f"no answer to a credit check within {POINTS_TIMEOUT:.0f} s")
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return Points(unreachable=f"could not check ({type(exc).__name__})")


def _session_row(sid: str, answer: Points, source: str) -> Row:
    check = f"jimeng session {mask(sid)}"
    if answer.expired:
        return Row.fail(
            check, f"expired or invalid (from {source}): pictures cannot be drawn with it", ROTATE
        )
    if answer.credits is None:
        return Row.fail(check, f"not checked: {answer.unreachable} (from {source})", OUTAGE)
    if answer.credits <= 0:
        return Row.fail(
            check, f"live but no credits left (from {source}): set aside until it has", NO_CREDITS
        )
    return Row.ok(check, f"can draw, {answer.credits} credits (from {source})")


def _no_ids(sessions: Sessions) -> Row:
    return Row.fail("jimeng sessions", f"no session id left ({sessions.source})", ROTATE)


def _unreachable(url: str, why: str) -> Row:
    return Row.fail(
        "jimeng-api",
        f"{url} {why}",
        "start jimeng-api (`docker compose up -d jimeng-api`) or fix JIMENG_API_URL in the image_worker's "
        "environment; inside docker compose it is http://jimeng-api:5100, not 127.0.0.1",
    )
