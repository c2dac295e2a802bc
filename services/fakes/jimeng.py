"""A fake jimeng-api (iptag/jimeng-api), faithful where clients trip.

    python -m services.fakes.jimeng --port 5100 [--image-seconds 2] [--url-ttl 10800]
        [--live-ids a,b] [--dead-ids c] [--fault MODE[:COUNT]]

What it copies from the real service (docs/upstreams.md): every error is HTTP 200
with `{"code": <negative>, "message", "data": null}`; the session id travels as
`Authorization: Bearer <id>[,<id>...]` and one of several is picked at random per
request; `size`/`width`/`height` are refused; results are four signed URLs that
stop working after a while (403, like the real CDN) or base64 with
`response_format: "b64_json"`. The images are real webp pictures (see `pictures`).

Control (no auth): `POST /_fake/faults {"mode", "count", "seconds"}` makes the next
`count` generation/composition requests that reach the upstream step fail in `mode`;
`DELETE /_fake/faults` clears; `POST /_fake/sessions {"dead": [...], "live": [...]}`
kills or revives session ids; `GET /_fake/stats` counts what happened, with the
generation/composition requests being served now (`in_flight`, `peak_in_flight`, and
their integral over time, see serving.InFlight).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import io
import math
import random
import re
import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from PIL import Image, UnidentifiedImageError

from services.fakes import pictures
from services.fakes.serving import (
    FaultQueue,
    InFlight,
    add_fault_option,
    add_fault_routes,
    check_fault_modes,
    count_in_flight,
    run,
    shorten,
)

MODELS = (
    "jimeng-5.0",
    "jimeng-4.6",
    "jimeng-4.5",
    "jimeng-4.1",
    "jimeng-4.0",
    "jimeng-3.1",
    "jimeng-3.0",
)
DEFAULT_MODEL = "jimeng-4.5"
RESOLUTIONS = ("1k", "2k", "4k")
IMAGES_PER_REQUEST = 4
DRAWING_PATHS = ("/v1/images/generations", "/v1/images/compositions")

LOGIN_EXPIRED = "[登录失效]: check login error。请重新获取refresh_token并更新配置"

# code, message for the faults that answer with an error body.
FAULT_ERRORS: dict[str, tuple[int, str]] = {
    "session_expired": (-2002, LOGIN_EXPIRED),
    "no_credits": (-2009, "[积分不足]: credit prededuct not enough"),
    "credits_refused": (-2001, "[请求失败]: 积分扣除失败，请检查账户积分 (错误码: 1006)"),
    "anti_bot": (-2001, "[请求失败]: shark not pass (错误码: 1019)"),
    "content_policy_submit": (-2006, "[内容违规]: 输入的内容可能包含不适宜的信息，请修改后重试"),
    "content_policy": (-2007, "图像生成失败，状态码: 30，错误码: 2038"),
    "generation_timeout": (-2007, "图像生成失败: timed out with no results after polling"),
    "plain_error": (-1000, "timeout of 45000ms exceeded"),
}
# Faults that fail only after the upstream has "worked" on the request for a while.
SLOW_FAULTS = ("content_policy", "generation_timeout", "empty_data")
FAULT_MODES = (*FAULT_ERRORS, "empty_data", "hang")

_REGION = re.compile(r"^(us|hk|jp|sg)-", re.IGNORECASE)
_DATA_URI = re.compile(r"^data:[\w/+.-]+;base64,(.*)$", re.DOTALL)


@dataclass(frozen=True)
class JimengConfig:
    # Seconds a successful generation takes (the real one: 30 s to minutes).
    image_seconds: float = 2.0
    # Seconds a returned image URL stays valid (the real CDN: about 2-3 hours).
    url_ttl: float = 10800.0
    # None: every non-empty id that is not dead is live.
    live_ids: frozenset[str] | None = None
    dead_ids: frozenset[str] = frozenset()
    faults: tuple[tuple[str, int], ...] = ()
    credits: int = 80
    long_side: int = 640
    # Pictures kept for their URLs; the oldest are forgotten first (a 404, as if the
    # CDN had dropped them) so a long demo does not grow without bound.
    max_files: int = 2000


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    images_served: int = 0
    sessions_used: Counter[str] = field(default_factory=Counter)
    models_used: Counter[str] = field(default_factory=Counter)
    last_request: Any = None
    # The most recent image URLs handed out, so a test can watch them expire.
    urls: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    # Generation/composition requests being served (the slow calls a worker holds open).
    in_flight: InFlight = field(default_factory=InFlight)


class Sessions:
    """Which session ids the fake upstream accepts; changeable at runtime."""

    def __init__(self, *, live: frozenset[str] | None, dead: frozenset[str]) -> None:
        self.live: set[str] | None = None if live is None else set(live)
        self.dead: set[str] = set(dead)

    def is_live(self, session_id: str) -> bool:
        forms = {session_id, _bare(session_id)}
        if not _bare(session_id) or forms & self.dead:
            return False
        return self.live is None or bool(forms & self.live)

    def update(self, *, dead: Sequence[str], live: Sequence[str]) -> None:
        for sid in dead:
            self.dead.add(sid)
            if self.live is not None:
                self.live.discard(sid)
        for sid in live:
            self.dead.discard(sid)
            if self.live is not None:
                self.live.add(sid)


def _bare(session_id: str) -> str:
    """The id without the proxy prefix (`socks5://h:p@`) and region prefix (`us-`)."""
    sid = session_id.strip()
    if "://" in sid and "@" in sid:
        sid = sid.rsplit("@", 1)[1]
    return _REGION.sub("", sid)


class Failure(Exception):
    """An answer of the fake upstream that is an error body (always HTTP 200)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fail(code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": None})


def create_app(config: JimengConfig) -> FastAPI:
    app = FastAPI(title="fake jimeng-api", docs_url=None, redoc_url=None, openapi_url=None)
    faults = FaultQueue(FAULT_MODES)
    for mode, count in config.faults:
        faults.add(mode, count=count)
    sessions = Sessions(live=config.live_ids, dead=config.dead_ids)
    stats = Stats()
    files: OrderedDict[str, bytes | Callable[[], bytes]] = OrderedDict()
    secret = secrets.token_bytes(32)
    pick = random.Random()
    add_fault_routes(app, faults)
    count_in_flight(app, stats.in_flight, DRAWING_PATHS)

    def sign(name: str, expires: int) -> str:
        return hmac.new(secret, f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

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

    @app.get("/_fake/stats")
    async def get_stats() -> dict[str, Any]:
        return {
            "requests": dict(stats.requests),
            "images_served": stats.images_served,
            "sessions_used": dict(stats.sessions_used),
            "models_used": dict(stats.models_used),
            "faults_served": dict(faults.served),
            "pending_faults": faults.pending(),
            "files": len(files),
            "last_request": stats.last_request,
            "urls": list(stats.urls),
            **stats.in_flight.as_dict(),
        }

    @app.post("/_fake/sessions")
    async def change_sessions(request: Request) -> JSONResponse:
        body = await _json_object(request)
        dead, live = body.get("dead", []), body.get("live", [])
        if not (_str_list(dead) and _str_list(live)):
            return JSONResponse(
                {"error": 'send {"dead": [ids], "live": [ids]} (lists of strings)'},
                status_code=400,
            )
        sessions.update(dead=dead, live=live)
        return JSONResponse(
            {
                "dead": sorted(sessions.dead),
                "live": None if sessions.live is None else sorted(sessions.live),
            }
        )

    @app.post("/token/check")
    async def token_check(request: Request) -> JSONResponse:
        stats.requests["token_check"] += 1
        body = await _json_object(request)
        token = body.get("token")
        if not isinstance(token, str):
            return fail(-2000, "Params body.token invalid")
        return JSONResponse({"live": sessions.is_live(token)})

    @app.post("/token/points")
    async def token_points(request: Request) -> JSONResponse:
        stats.requests["token_points"] += 1
        authorization = request.headers.get("authorization")
        if authorization is None:
            return fail(-2000, "Params headers.authorization invalid")
        tokens = _split(authorization)
        # The real one asks upstream for every id and fails as a whole if one is dead.
        if not all(sessions.is_live(t) for t in tokens):
            return fail(-2002, LOGIN_EXPIRED)
        credit = {
            "giftCredit": config.credits,
            "purchaseCredit": 0,
            "vipCredit": 0,
            "totalCredit": config.credits,
        }
        return JSONResponse([{"token": t, "points": credit} for t in tokens])

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Response:
        return await generate(request, composition=False)

    @app.post("/v1/images/compositions")
    async def compositions(request: Request) -> Response:
        return await generate(request, composition=True)

    async def generate(request: Request, *, composition: bool) -> Response:
        stats.requests["compositions" if composition else "generations"] += 1
        body = await _json_object(request)
        stats.last_request = shorten(body)
        try:
            params = _validate(body, request.headers.get("authorization"), composition)
            # Like the real one: one id at random, no failover, so one dead id among
            # several shows up as random failures.
            session_id = pick.choice(_split(params.authorization))
            stats.sessions_used[session_id] += 1
            if not sessions.is_live(session_id):
                raise Failure(-2002, LOGIN_EXPIRED)
            reference = await _reference(request, params.images[0]) if params.images else None
            fault = faults.take()
            if fault is not None and fault.mode == "hang":
                if await _hold(request, fault.seconds if fault.seconds is not None else 3600.0):
                    return Response(status_code=499)  # nobody is listening any more
            elif fault is not None:
                if fault.mode in SLOW_FAULTS:
                    await asyncio.sleep(config.image_seconds)
                if fault.mode == "empty_data":
                    return JSONResponse({"created": int(time.time()), "data": []})
                raise Failure(*FAULT_ERRORS[fault.mode])
        except Failure as exc:
            return fail(exc.code, exc.message)

        stats.models_used[params.model] += 1
        # The configured time is the whole wait: the first picture is rendered while
        # waiting, the other three only if someone downloads them (the way a client that
        # keeps one of the four costs this fake one render, not four).
        # The three kept for later hold a small copy of the reference, not the upload.
        later = _small(reference, config.long_side // 2)
        draw = [
            functools.partial(
                pictures.render,
                params.prompt,
                ratio=params.ratio,
                variant=i,
                reference=reference if i == 0 else later,
                long_side=config.long_side,
            )
            for i in range(IMAGES_PER_REQUEST)
        ]
        first = asyncio.ensure_future(asyncio.to_thread(draw[0]))
        await asyncio.sleep(config.image_seconds)
        images: list[bytes | Callable[[], bytes]] = [await first, *draw[1:]]
        data: list[dict[str, str]] = []
        base = str(request.base_url).rstrip("/")
        expires = math.ceil(time.time() + config.url_ttl)
        for picture in images:
            name = f"{secrets.token_hex(16)}.webp"
            if params.response_format == "b64_json":
                picture = picture if isinstance(picture, bytes) else await asyncio.to_thread(picture)
                data.append({"b64_json": base64.b64encode(picture).decode()})
            else:
                url = f"{base}/files/{name}?expires={expires}&sig={sign(name, expires)}"
                data.append({"url": url})
                stats.urls.append(url)
            files[name] = picture
            while len(files) > config.max_files:
                files.popitem(last=False)
        result: dict[str, Any] = {"created": int(time.time()), "data": data}
        if composition:
            result |= {
                "input_images": len(params.images),
                "composition_type": "multi_image_synthesis",
            }
        return JSONResponse(result)

    @app.api_route("/files/{name}", methods=["GET", "HEAD"])
    async def get_file(name: str, request: Request) -> Response:
        expires_arg = request.query_params.get("expires", "")
        given = request.query_params.get("sig", "")
        if not expires_arg.isdigit() or not hmac.compare_digest(given, sign(name, int(expires_arg))):
            return _denied("SignatureDoesNotMatch", "The request signature does not match.")
        if time.time() > int(expires_arg):
            return _denied("AccessDenied", "Request has expired")
        picture = files.get(name)
        if picture is None:
            return _denied("NoSuchKey", "The specified key does not exist.", status=404)
        if not isinstance(picture, bytes):  # drawn on its first download
            picture = files[name] = await asyncio.to_thread(picture)
        if request.method == "GET":
            stats.images_served += 1
        return Response(picture, media_type="image/webp")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown_route(path: str) -> JSONResponse:
        # jimeng-api answers an unknown route like any other error: HTTP 200 + code.
        return fail(-1000, f"Route /{path} is not supported")

    return app


@dataclass(frozen=True)
class Params:
    prompt: str
    model: str
    ratio: str
    response_format: str
    authorization: str
    images: list[str]


def _validate(body: dict[str, Any], authorization: str | None, composition: bool) -> Params:
    """The checks jimeng-api makes before it talks to the upstream, in its order."""
    refused = [k for k in ("size", "width", "height") if k in body]
    if refused:
        raise Failure(
            -1000, f"不支持的参数: {', '.join(refused)}。请使用 ratio 和 resolution 参数控制图像尺寸。"
        )
    for key in ("model", "negative_prompt", "ratio", "resolution", "response_format"):
        if key in body and not isinstance(body[key], str):
            raise Failure(-2000, f"Params body.{key} invalid")
    if not isinstance(body.get("prompt"), str):
        raise Failure(-2000, "Params body.prompt invalid")
    strength = body.get("sample_strength")
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, int | float)):
        raise Failure(-2000, "Params body.sample_strength invalid")
    raw = body.get("images")
    if composition and not isinstance(raw, list):
        raise Failure(-2000, "Params body.images invalid")
    if authorization is None:
        raise Failure(-2000, "Params headers.authorization invalid")
    images: list[str] = []
    if composition and isinstance(raw, list):
        if not raw:
            raise Failure(-1000, "至少需要提供1张输入图片")
        if len(raw) > 10:
            raise Failure(-1000, "最多支持10张输入图片")
        for i, item in enumerate(raw, start=1):
            url = item.get("url") if isinstance(item, dict) else item
            if not isinstance(url, str) or not url:
                raise Failure(-1000, f"图片 {i} 格式不正确：应为URL字符串或包含url字段的对象")
            images.append(url)
    ratio = body.get("ratio", "1:1")
    if ratio not in pictures.RATIOS:
        raise Failure(-2000, f"不支持的比例: {ratio}，支持: {' '.join(pictures.RATIOS)}")
    resolution = body.get("resolution", "2k")
    if resolution not in RESOLUTIONS:
        raise Failure(-2000, f"不支持的分辨率: {resolution}，支持: {' '.join(RESOLUTIONS)}")
    model = body.get("model", DEFAULT_MODEL)
    return Params(
        prompt=body["prompt"],
        # An unknown model silently becomes the default, as upstream does.
        model=model if model in MODELS else DEFAULT_MODEL,
        ratio=ratio,
        response_format=body.get("response_format", "url"),
        authorization=authorization,
        images=images,
    )


def _split(authorization: str) -> list[str]:
    # Same as jimeng-api's tokenSplit, plus trimming spaces around the commas.
    return [t.strip() for t in authorization.replace("Bearer ", "", 1).split(",")]


async def _reference(request: Request, source: str) -> Image.Image:
    """The first reference image, from a data URI or by downloading it."""
    match = _DATA_URI.match(source)
    if match:
        try:
            data = base64.b64decode(match.group(1), validate=False)
        except (binascii.Error, ValueError):
            raise Failure(-1000, "图片 1 的 BASE64 数据无法解析") from None
    else:
        try:
            async with httpx.AsyncClient(timeout=15.0, trust_env=False) as client:
                response = await client.get(source)
        except httpx.HTTPError as exc:
            raise Failure(-1000, f"File {source} is not valid: {exc!r}") from None
        if response.status_code >= 400:
            raise Failure(
                -1000,
                f"File {source} is not valid: [{response.status_code}] {response.reason_phrase}",
            )
        data = response.content
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError):
        raise Failure(-1000, f"上传文件失败: {source[:60]} 不是可识别的图片") from None
    return image


def _small(image: Image.Image | None, side: int) -> Image.Image | None:
    if image is None:
        return None
    small = image.convert("RGB")
    small.thumbnail((side, side))
    return small


async def _hold(request: Request, seconds: float) -> bool:
    """Hold a request open like a long upstream queue; True if the client left meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.2))
        if await request.is_disconnected():
            return True
    return False


def _denied(code: str, message: str, *, status: int = 403) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


async def _json_object(request: Request) -> dict[str, Any]:
    # A body that is not a JSON object reads as empty, so the field checks report
    # which field is missing, as jimeng-api's validators do.
    try:
        value = await request.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# ------------------------------------------------------------------------ command line


def _ids(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.fakes.jimeng",
        description="Fake jimeng-api image service for tests and the offline demo.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5100, help="0 picks a free port")
    parser.add_argument("--image-seconds", type=float, default=2.0)
    parser.add_argument("--url-ttl", type=float, default=10800.0, help="image URL lifetime, s")
    parser.add_argument("--live-ids", type=_ids, help="only these session ids are live")
    parser.add_argument("--dead-ids", type=_ids, default=frozenset(), help="expired ids")
    parser.add_argument("--credits", type=int, default=80)
    add_fault_option(parser, FAULT_MODES)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    check_fault_modes(args.fault, FAULT_MODES)
    config = JimengConfig(
        image_seconds=args.image_seconds,
        url_ttl=args.url_ttl,
        live_ids=args.live_ids,
        dead_ids=args.dead_ids,
        faults=tuple(args.fault),
        credits=args.credits,
    )
    run(create_app(config), host=args.host, port=args.port, name="jimeng")


if __name__ == "__main__":
    main()
