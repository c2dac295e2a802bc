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
# What the international site (region ids with a `us-` prefix) offers; hk/jp/sg ids
# get the mainland list.
US_MODELS = ("jimeng-4.5", "jimeng-4.1", "jimeng-4.0", "jimeng-3.0", "nanobanana", "nanobananapro")
IMAGES_PER_REQUEST = 4
# How long the real server takes to give up when its upstream is unreachable: 4 tries
# 5 s apart for a request, about twice that for a composition's upload step.
UNREACHABLE_SECONDS = 15.0
UPLOAD_UNREACHABLE_SECONDS = 30.0
UNREACHABLE = "getaddrinfo ENOTFOUND jimeng.jianying.com"
MULTI_PICTURE = re.compile(r"绘本|故事|连续|\d+\s*张")
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
# "slow": a generation that takes `seconds` (default 60) and then succeeds, paid for
# whether or not its client is still there; "hang": one that never comes back.
FAULT_MODES = (*FAULT_ERRORS, "empty_data", "hang", "slow")

_REGION = re.compile(r"^(us|hk|jp|sg)-", re.IGNORECASE)
_US = re.compile(r"^us-", re.IGNORECASE)
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
    # Live ids whose account has no credits left.
    broke_ids: frozenset[str] = frozenset()
    # The fake's own upstream (jimeng.jianying.com) is unreachable.
    upstream_down: bool = False
    # Multiplies the real server's failure timings (15 s, 30 s) and the time a
    # dead or broke id takes to be refused.
    time_scale: float = 1.0
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
    # Generations that finished upstream, whether or not their client was still there:
    # what the account was charged for.
    paid: int = 0
    # Of those, the ones whose client had left before the answer (paid for nothing).
    paid_unseen: int = 0
    multi_picture_prompts: int = 0


class Sessions:
    """Which session ids the fake upstream accepts; changeable at runtime."""

    def __init__(
        self, *, live: frozenset[str] | None, dead: frozenset[str], broke: frozenset[str] = frozenset()
    ) -> None:
        self.live: set[str] | None = None if live is None else set(live)
        self.dead: set[str] = set(dead)
        self.broke: set[str] = set(broke)

    def has_credits(self, session_id: str) -> bool:
        return not ({session_id, _bare(session_id)} & self.broke)

    def is_live(self, session_id: str) -> bool:
        forms = {session_id, _bare(session_id)}
        if not _bare(session_id) or forms & self.dead:
            return False
        return self.live is None or bool(forms & self.live)

    def update(
        self,
        *,
        dead: Sequence[str],
        live: Sequence[str],
        broke: Sequence[str] = (),
        funded: Sequence[str] = (),
    ) -> None:
        self.broke |= set(broke)
        self.broke -= set(funded)
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
    sessions = Sessions(live=config.live_ids, dead=config.dead_ids, broke=config.broke_ids)
    upstream = {"down": config.upstream_down}
    cdn = {"fail": 0}
    stats = Stats()
    # Generations go on after their client leaves, as upstream's do.
    running: set[asyncio.Task[Any]] = set()
    scale = config.time_scale
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
            "paid": stats.paid,
            "paid_unseen": stats.paid_unseen,
            "multi_picture_prompts": stats.multi_picture_prompts,
            "upstream_down": upstream["down"],
            **stats.in_flight.as_dict(),
        }

    @app.post("/_fake/sessions")
    async def change_sessions(request: Request) -> JSONResponse:
        body = await _json_object(request)
        lists = {k: body.get(k, []) for k in ("dead", "live", "broke", "funded")}
        if not all(_str_list(v) for v in lists.values()):
            return JSONResponse(
                {"error": 'send {"dead", "live", "broke", "funded": [ids]} (lists of strings)'},
                status_code=400,
            )
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
        body = await _json_object(request)
        if not isinstance(body.get("fail"), int) or body["fail"] < 0:
            return JSONResponse({"error": 'send {"fail": <count>}'}, status_code=400)
        cdn["fail"] = body["fail"]
        return JSONResponse({"fail": cdn["fail"]})

    @app.post("/_fake/upstream")
    async def change_upstream(request: Request) -> JSONResponse:
        body = await _json_object(request)
        if not isinstance(body.get("down"), bool):
            return JSONResponse({"error": 'send {"down": true|false}'}, status_code=400)
        upstream["down"] = body["down"]
        return JSONResponse({"down": upstream["down"]})

    @app.post("/token/check")
    async def token_check(request: Request) -> JSONResponse:
        stats.requests["token_check"] += 1
        body = await _json_object(request)
        token = body.get("token")
        if not isinstance(token, str):
            return fail(-2000, "Params body.token invalid")
        if upstream["down"]:
            # The real one answers false for ANY failure, its own outage included.
            await asyncio.sleep(UNREACHABLE_SECONDS * scale)
            return JSONResponse({"live": False})
        return JSONResponse({"live": sessions.is_live(token)})

    @app.post("/token/points")
    async def token_points(request: Request) -> JSONResponse:
        stats.requests["token_points"] += 1
        authorization = request.headers.get("authorization")
        if authorization is None:
            return fail(-2000, "Params headers.authorization invalid")
        tokens = _split(authorization)
        if upstream["down"]:
            await asyncio.sleep(UNREACHABLE_SECONDS * scale)
            return fail(-1000, UNREACHABLE)
        # The real one asks upstream for every id and fails as a whole if one is dead.
        if not all(sessions.is_live(t) for t in tokens):
            return fail(-2002, LOGIN_EXPIRED)

        def credit(token: str) -> dict[str, int]:
            left = config.credits if sessions.has_credits(token) else 0
            return {"giftCredit": left, "purchaseCredit": 0, "vipCredit": 0, "totalCredit": left}

        return JSONResponse([{"token": t, "points": credit(t)} for t in tokens])

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
            if _US.match(session_id) and params.model not in US_MODELS:
                raise Failure(-1000, f'国际版不支持模型 "{params.model}"。支持的模型: {", ".join(US_MODELS)}')
            if upstream["down"]:
                if composition:
                    await asyncio.sleep(UPLOAD_UNREACHABLE_SECONDS * scale)
                    raise Failure(-2007, f"图片上传失败: {UNREACHABLE}")
                await asyncio.sleep(UNREACHABLE_SECONDS * scale)
                raise Failure(-1000, UNREACHABLE)
            if not sessions.is_live(session_id):
                await asyncio.sleep(1.0 * scale)  # one round trip upstream
                raise Failure(-2002, LOGIN_EXPIRED)
            if not sessions.has_credits(session_id):
                await asyncio.sleep(1.0 * scale)
                raise Failure(-2009, "[积分不足]: credit prededuct not enough")
            if params.model.startswith("jimeng-4") and MULTI_PICTURE.search(params.prompt):
                stats.multi_picture_prompts += 1
            reference = await _reference(request, params.images[0]) if params.images else None
            fault = faults.take()
            seconds = config.image_seconds
            if fault is not None and fault.mode == "slow":
                seconds = fault.seconds if fault.seconds is not None else 60.0
            elif fault is not None and fault.mode == "hang":
                if await _hold(request, fault.seconds if fault.seconds is not None else 3600.0):
                    return Response(status_code=499)  # nobody is listening any more
            elif fault is not None:
                if fault.mode in SLOW_FAULTS:
                    await asyncio.sleep(config.image_seconds)
                elif fault.mode == "plain_error":  # its message says: a 45 s upstream timeout
                    await asyncio.sleep(UNREACHABLE_SECONDS * scale)
                if fault.mode == "empty_data":
                    return JSONResponse({"created": int(time.time()), "data": []})
                raise Failure(*FAULT_ERRORS[fault.mode])
        except Failure as exc:
            return fail(exc.code, exc.message)

        stats.models_used[params.model] += 1
        # Upstream draws whether or not the client waits for it, and charges for it.
        drawing = asyncio.ensure_future(_draw(params, reference, seconds))
        running.add(drawing)
        drawing.add_done_callback(running.discard)
        try:
            images = await asyncio.shield(drawing)
        except asyncio.CancelledError:
            stats.paid_unseen += 1
            raise
        if await request.is_disconnected():
            stats.paid_unseen += 1
        return _answer(request, params, images, composition=composition)

    async def _draw(
        params: Params, reference: Image.Image | None, seconds: float
    ) -> list[bytes | Callable[[], bytes]]:
        """One generation upstream, paid for when it is done."""
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
        await asyncio.sleep(seconds)
        images: list[bytes | Callable[[], bytes]] = [await first, *draw[1:]]
        stats.paid += 1
        return images

    def _answer(
        request: Request, params: Params, images: list[bytes | Callable[[], bytes]], *, composition: bool
    ) -> Response:
        data: list[dict[str, str]] = []
        base = str(request.base_url).rstrip("/")
        expires = math.ceil(time.time() + config.url_ttl)
        for picture in images:
            name = f"{secrets.token_hex(16)}.webp"
            if params.response_format == "b64_json":
                picture = picture if isinstance(picture, bytes) else picture()
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
        if cdn["fail"] > 0:
            cdn["fail"] -= 1
            return _denied("ServiceUnavailable", "Please reduce your request rate.", status=503)
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
        # A value of the right type that the server does not offer: a plain error (-1000).
        raise Failure(-1000, f"不支持的比例: {ratio}，支持: {' '.join(pictures.RATIOS)}")
    resolution = body.get("resolution", "2k")
    if resolution not in RESOLUTIONS:
        raise Failure(-1000, f"不支持的分辨率: {resolution}，支持: {' '.join(RESOLUTIONS)}")
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
    parser.add_argument("--broke-ids", type=_ids, default=frozenset(), help="live ids with no credits")
    parser.add_argument("--credits", type=int, default=80)
    parser.add_argument("--upstream-down", action="store_true", help="the fake's own upstream is unreachable")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiplies the real server's failure timings (15 s, 30 s), e.g. 0.1 in tests",
    )
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
        broke_ids=args.broke_ids,
        upstream_down=args.upstream_down,
        time_scale=args.time_scale,
        faults=tuple(args.fault),
        credits=args.credits,
    )
    run(create_app(config), host=args.host, port=args.port, name="jimeng")


if __name__ == "__main__":
    main()
