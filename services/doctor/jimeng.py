"""jimeng-api: is it there, is every session id alive, are there credits left?

jimeng-api reads no session variable: the image_worker sends the ids. The ids
checked are the ones the image_worker uses: JIMENG_SESSION_ID, changed by the
operator's session command kept in the broker (`jimeng-session set/add/remove`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import httpx

from services.common.contracts import JimengSessions
from services.common.settings import FIXES, mask
from services.doctor.report import Row, Status
from services.image_worker.config import ImageSettings

ROTATE = (
    "get a new sessionid from jimeng.jianying.com (log in, cookie `sessionid`) and run "
    "`python -m services.doctor jimeng-session set <ids>`"
)


@dataclass(frozen=True)
class Sessions:
    ids: list[str]
    source: str


def effective(env_ids: list[str], kept: JimengSessions | None) -> Sessions:
    """The ids an image_worker uses: what it starts with, then the kept command (as SessionPool.apply)."""
    if kept is None:
        return Sessions(env_ids, "JIMENG_SESSION_ID")
    ids = [i.strip() for i in kept.ids if i.strip()]
    if kept.mode == "set":
        return Sessions(ids, "the `set` command kept in the broker")
    if kept.mode == "add":
        return Sessions([*env_ids, *(i for i in ids if i not in env_ids)], "JIMENG_SESSION_ID + kept `add`")
    return Sessions([i for i in env_ids if i not in ids], "JIMENG_SESSION_ID - kept `remove`")


def client(wait: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=wait, trust_env=False)


async def check_jimeng(
    settings: ImageSettings, kept: Awaitable[JimengSessions | None], *, wait: float
) -> list[Row]:
    url = settings.jimeng_api_url
    assert url is not None  # asked only when the provider is jimeng, which requires it
    async with client(wait) as http:
        ping = await check_ping(http, url)
        if ping.status is not Status.OK:
            return [ping, Row.skip("jimeng sessions", "jimeng-api does not answer")]
        sessions = effective(settings.session_ids, await kept)
        if not sessions.ids:
            return [ping, _no_ids(sessions)]
        alive = await check_ids(http, url, sessions.ids)
        rows = [ping, *(_session_row(sid, live, sessions.source) for sid, live in alive.items())]
        live_ids = [sid for sid, live in alive.items() if live is True]
        rows.append(await check_credits(http, url, live_ids) if live_ids else _no_credits_check())
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


async def check_ids(http: httpx.AsyncClient, url: str, ids: list[str]) -> dict[str, bool | str]:
    """Each id: True (live), False (expired or invalid), or why it could not be checked."""
    answers = await asyncio.gather(*(_check_one(http, url, sid) for sid in ids))
    return dict(zip(ids, answers, strict=True))


async def _check_one(http: httpx.AsyncClient, url: str, sid: str) -> bool | str:
    try:
        resp = await http.post(f"{url}/token/check", json={"token": sid})
        body = resp.json()
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return f"could not check ({type(exc).__name__})"
    if isinstance(body, dict) and isinstance(body.get("live"), bool):
        return bool(body["live"])
    return f"unexpected answer from /token/check: {_said(body)}"


async def check_credits(http: httpx.AsyncClient, url: str, ids: list[str]) -> Row:
    try:
        resp = await http.post(f"{url}/token/points", headers={"Authorization": f"Bearer {','.join(ids)}"})
        body = resp.json()
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return Row.skip("jimeng credits", f"not readable ({type(exc).__name__})")
    credits = _credits(body)
    if credits is None:
        return Row.skip("jimeng credits", f"not readable: {_said(body)}")
    shown = ", ".join(f"{mask(sid)} {n}" for sid, n in credits.items())
    if sum(credits.values()) <= 0:
        return Row.fail(
            "jimeng credits",
            f"no credits left ({shown})",
            "wait for the daily free credits or buy credits at jimeng.jianying.com, or add a session id "
            "of another account: `python -m services.doctor jimeng-session add <id>`",
        )
    return Row.ok("jimeng credits", shown)


def _credits(body: Any) -> dict[str, int] | None:
    if not isinstance(body, list):
        return None
    found: dict[str, int] = {}
    for item in body:
        points = item.get("points") if isinstance(item, dict) else None
        if isinstance(points, dict) and isinstance(points.get("totalCredit"), int | float):
            found[str(item.get("token", "?"))] = int(points["totalCredit"])
    return found or None


def _session_row(sid: str, live: bool | str, source: str) -> Row:
    check = f"jimeng session {mask(sid)}"
    if live is True:
        return Row.ok(check, f"live (from {source})")
    if live is False:
        return Row.fail(check, f"expired or invalid (from {source}): pictures drawn with it fail", ROTATE)
    return Row.fail(check, f"{live} (from {source})", "check that JIMENG_API_URL is jimeng-api")


def _no_ids(sessions: Sessions) -> Row:
    return Row.fail("jimeng sessions", f"no session id left ({sessions.source})", ROTATE)


def _no_credits_check() -> Row:
    return Row.skip("jimeng credits", "no live session id to ask with")


def _unreachable(url: str, why: str) -> Row:
    return Row.fail(
        "jimeng-api",
        f"{url} {why}",
        "start jimeng-api (`docker compose up -d jimeng-api`) or fix JIMENG_API_URL in the image_worker's "
        "environment; inside docker compose it is http://jimeng-api:5100, not 127.0.0.1",
    )


def _said(body: Any) -> str:
    if isinstance(body, dict) and "message" in body:
        return f"code {body.get('code')}: {body.get('message')}"[:160]
    return repr(body)[:160]
