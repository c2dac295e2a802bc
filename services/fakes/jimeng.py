"""A fake jimeng-api (iptag/jimeng-api), faithful where clients trip.

    python -m services.fakes.jimeng --port 5100 [--image-seconds 2] [--url-ttl 10800]
        [--live-ids a,b] [--dead-ids c] [--broke-ids d] [--upstream-down] [--time-scale 1]
        [--fault MODE[:COUNT]]

What it copies from the real service (docs/upstreams.md): every error is HTTP 200
with `{"code": <negative>, "message", "data": null}`; the session id travels as
`Authorization: Bearer <id>[,<id>...]` and one of several is picked at random per
request; `size`/`width`/`height` are refused; results are four signed URLs that
stop working after a while (403, like the real CDN) or base64 with
`response_format: "b64_json"`. The images are real webp pictures (see `pictures`).

And what is easy to miss (docs/upstreams.md, "What the real jimeng-api server does"):
a generation is never cancelled when its client leaves: it goes on and is counted as
paid (`paid` in the stats), so a client that times out and asks again pays twice;
with its upstream unreachable (`--upstream-down`) a generation answers
`-1000 getaddrinfo ENOTFOUND` after about 15 s, a composition `-2007 图片上传失败`
after about 30 s, `/token/points` -1000 after 15 s, and `/token/check` says
`{"live": false}` after 15 s for every id, live or not; a region id (`us-`) with a
model the international site lacks gets an instant -1000; an id without credits
(`--broke-ids`) gets -2009. `--time-scale` shrinks every one of these waits, so
tests stay fast while keeping their proportions. A jimeng-4.x prompt with 绘本,
故事, 连续 or `N张` would switch the real one into multi-picture mode; the fake
counts such prompts (`multi_picture_prompts`).

Control (no auth): `POST /_fake/faults {"mode", "count", "seconds"}` makes the next
`count` generation/composition requests that reach the upstream step fail in `mode`;
`DELETE /_fake/faults` clears; `POST /_fake/sessions {"dead": [...], "live": [...]}`
kills or revives session ids (and `"broke"` / `"funded"` takes or gives back their
credits); `POST /_fake/upstream {"down": bool}` cuts or restores the fake's own
upstream; `POST /_fake/files {"fail": N}` makes the next N picture downloads 503;
`GET /_fake/stats` counts what happened, with the generation/composition requests
being served now (`in_flight`, `peak_in_flight`, and their integral over time, see
serving.InFlight).
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from services.fakes import serving
from services.fakes.jimeng_checks import (
    DEFAULT_MODEL,
    DRAWING_PATHS,
    FAULT_MODES,
    LOGIN_EXPIRED,
    MODELS,
    UNREACHABLE,
    UNREACHABLE_SECONDS,
    URLS,
    Sessions,
    fail,
    json_object,
    split_ids,
    str_list,
)
from services.fakes.jimeng_draw import add_drawing_routes
from services.fakes.signed import DrawingConfig, SignedFiles, comma_set


@dataclass(frozen=True)
class JimengConfig(DrawingConfig):
    # None: every non-empty id that is not dead is live.
    live_ids: frozenset[str] | None = None
    dead_ids: frozenset[str] = frozenset()
    # Live ids whose account has no credits left.
    broke_ids: frozenset[str] = frozenset()
    # The fake's own upstream (jimeng.jianying.com) is unreachable.
    upstream_down: bool = False
    # Multiplies the real server's failure timings (15 s, 30 s) and the time a
    # dead or broke id takes to be refused.
    time_scale: float = 1.0
    credits: int = 80


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    sessions_used: Counter[str] = field(default_factory=Counter)
    models_used: Counter[str] = field(default_factory=Counter)
    last_request: Any = None
    # The most recent image URLs handed out, so a test can watch them expire.
    urls: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    # Generation/composition requests being served (the slow calls a worker holds open).
    in_flight: serving.InFlight = field(default_factory=serving.InFlight)
    # Generations that finished upstream, whether or not their client was still there:
    # what the account was charged for.
    paid: int = 0
    # Of those, the ones whose client had left before the answer (paid for nothing).
    paid_unseen: int = 0
    multi_picture_prompts: int = 0


@dataclass
class Fake:
    """Everything one fake server holds; its routes read and change it."""

    config: JimengConfig
    faults: serving.FaultQueue
    sessions: Sessions
    files: SignedFiles
    upstream_down: bool
    stats: Stats = field(default_factory=Stats)
    # Generations go on after their client leaves, as upstream's do.
    running: set[asyncio.Task[Any]] = field(default_factory=set)
    pick: random.Random = field(default_factory=random.Random)

    @property
    def scale(self) -> float:
        return self.config.time_scale


def create_app(config: JimengConfig) -> FastAPI:
    stats = Stats()
    app, faults = serving.fake_app("fake jimeng-api", config, stats, modes=FAULT_MODES, paths=DRAWING_PATHS)
    fake = Fake(
        config=config,
        faults=faults,
        sessions=Sessions(live=config.live_ids, dead=config.dead_ids, broke=config.broke_ids),
        files=SignedFiles(URLS, ttl=config.url_ttl, max_files=config.max_files),
        upstream_down=config.upstream_down,
        stats=stats,
    )
    _add_control_routes(app, fake)
    _add_token_routes(app, fake)
    add_drawing_routes(app, fake)
    fake.files.add_route(app)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown_route(path: str) -> JSONResponse:
        # jimeng-api answers an unknown route like any other error: HTTP 200 + code.
        return fail(-1000, f"Route /{path} is not supported")

    return app


def _add_control_routes(app: FastAPI, fake: Fake) -> None:
    stats = fake.stats

    @app.get("/_fake/stats")
    async def get_stats() -> dict[str, Any]:
        return {
            "requests": dict(stats.requests),
            "images_served": fake.files.served,
            "sessions_used": dict(stats.sessions_used),
            "models_used": dict(stats.models_used),
            **fake.faults.as_dict(),
            "files": len(fake.files),
            "last_request": stats.last_request,
            "urls": list(stats.urls),
            "paid": stats.paid,
            "paid_unseen": stats.paid_unseen,
            "multi_picture_prompts": stats.multi_picture_prompts,
            "upstream_down": fake.upstream_down,
            **stats.in_flight.as_dict(),
        }

    @app.post("/_fake/sessions")
    async def change_sessions(request: Request) -> JSONResponse:
        body = await json_object(request)
        lists = {k: body.get(k, []) for k in ("dead", "live", "broke", "funded")}
        if not all(str_list(v) for v in lists.values()):
            return JSONResponse(
                {"error": 'send {"dead", "live", "broke", "funded": [ids]} (lists of strings)'},
                status_code=400,
            )
        sessions = fake.sessions
        sessions.update(**lists)
        return JSONResponse(
            {
                "dead": sorted(sessions.dead),
                "live": None if sessions.live is None else sorted(sessions.live),
                "broke": sorted(sessions.broke),
            }
        )

    @app.post("/_fake/files")
    async def fail_files(request: Request) -> JSONResponse:
        """The next `fail` picture downloads answer 503, as a CDN having a bad minute."""
        body = await json_object(request)
        if not isinstance(body.get("fail"), int) or body["fail"] < 0:
            return JSONResponse({"error": 'send {"fail": <count>}'}, status_code=400)
        fake.files.failing = body["fail"]
        return JSONResponse({"fail": fake.files.failing})

    @app.post("/_fake/upstream")
    async def change_upstream(request: Request) -> JSONResponse:
        body = await json_object(request)
        if not isinstance(body.get("down"), bool):
            return JSONResponse({"error": 'send {"down": true|false}'}, status_code=400)
        fake.upstream_down = body["down"]
        return JSONResponse({"down": fake.upstream_down})


def _add_token_routes(app: FastAPI, fake: Fake) -> None:
    stats, sessions = fake.stats, fake.sessions

    @app.get("/ping")
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [
            {
                "id": m,
                "object": "model",
                "owned_by": "jimeng-api",
                "type": "image",
                "default": m == DEFAULT_MODEL,
            }
            for m in MODELS
        ]
        return {"object": "list", "data": data}

    @app.post("/token/check")
    async def token_check(request: Request) -> JSONResponse:
        stats.requests["token_check"] += 1
        body = await json_object(request)
        token = body.get("token")
        if not isinstance(token, str):
            return fail(-2000, "Params body.token invalid")
        if fake.upstream_down:
            # The real one answers false for ANY failure, its own outage included.
            await asyncio.sleep(UNREACHABLE_SECONDS * fake.scale)
            return JSONResponse({"live": False})
        return JSONResponse({"live": sessions.is_live(token)})

    @app.post("/token/points")
    async def token_points(request: Request) -> JSONResponse:
        stats.requests["token_points"] += 1
        authorization = request.headers.get("authorization")
        if authorization is None:
            return fail(-2000, "Params headers.authorization invalid")
        tokens = split_ids(authorization)
        if fake.upstream_down:
            await asyncio.sleep(UNREACHABLE_SECONDS * fake.scale)
            return fail(-1000, UNREACHABLE)
        # The real one asks upstream for every id and fails as a whole if one is dead.
        if not all(sessions.is_live(t) for t in tokens):
            return fail(-2002, LOGIN_EXPIRED)

        def credit(token: str) -> dict[str, int]:
            left = fake.config.credits if sessions.has_credits(token) else 0
            return {"giftCredit": left, "purchaseCredit": 0, "vipCredit": 0, "totalCredit": left}

        return JSONResponse([{"token": t, "points": credit(t)} for t in tokens])


# ------------------------------------------------------------------------ command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = serving.fake_parser(
        "jimeng", description="Fake jimeng-api image service for tests and the offline demo.", port=5100
    )
    parser.add_argument("--image-seconds", type=float, default=2.0)
    parser.add_argument("--url-ttl", type=float, default=10800.0, help="image URL lifetime, s")
    parser.add_argument("--live-ids", type=comma_set, help="only these session ids are live")
    parser.add_argument("--dead-ids", type=comma_set, default=frozenset(), help="expired ids")
    parser.add_argument("--broke-ids", type=comma_set, default=frozenset(), help="live ids with no credits")
    parser.add_argument("--credits", type=int, default=80)
    parser.add_argument("--upstream-down", action="store_true", help="the fake's own upstream is unreachable")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiplies the real server's failure timings (15 s, 30 s), e.g. 0.1 in tests",
    )
    serving.add_fault_option(parser, FAULT_MODES)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    serving.check_fault_modes(args.fault, FAULT_MODES)
    kept = ("image_seconds", "url_ttl", "live_ids", "dead_ids", "broke_ids", "upstream_down", "time_scale")
    config = JimengConfig(
        faults=tuple(args.fault), credits=args.credits, **{name: getattr(args, name) for name in kept}
    )
    serving.run(create_app(config), host=args.host, port=args.port, name="jimeng")


if __name__ == "__main__":
    main()
