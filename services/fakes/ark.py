"""A fake Volcengine Ark image API (Seedream), faithful where clients trip.

    python -m services.fakes.ark --port 8102 [--image-seconds 2] [--url-ttl 86400]
        [--keys KEY[,KEY...]] [--fault MODE[:COUNT]]

What it copies from the real service (docs/upstreams.md, Volcengine docs 1541523 and
1299023): `POST /api/v3/images/generations` with `Authorization: Bearer <key>`; real
HTTP statuses with `{"error": {"code", "message", "param", "type"}}`; the checks in
Ark's order (key, model, parameters) so a request without a prompt proves a key
without drawing; `size` as 1K/2K/4K or WIDTHxHEIGHT within Ark's limits; up to 14
reference images (`image`, URL or data URI, 10 MB each); one synchronous answer per
picture with a signed URL that stops working after a while (403, like the real
object store). A picture is paid for when it is finished, and it is finished even
when the client has gone (`paid` in the stats): a client that gives up and asks
again pays twice.

Control (no auth): `POST /_fake/faults {"mode", "count", "seconds"}` makes the next
`count` generation requests that would draw (key, model and parameters accepted)
fail in `mode`; `DELETE
/_fake/faults` clears; `GET /_fake/stats` counts what happened, with the generation
requests being served now (`in_flight`, `peak_in_flight`, see serving.InFlight).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import math
import re
import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
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

PATH = "/api/v3/images/generations"
MODELS = ("doubao-seedream-4-0-250828", "doubao-seedream-4-5-251128", "doubao-seedream-5-0-260128")
DEFAULT_KEY = "ark-offline-fake-key"
SCALES = {"1K": 1024, "2K": 2048, "4K": 4096}
MIN_PIXELS, MAX_PIXELS = 1280 * 720, 4096 * 4096
MAX_IMAGES = 14  # reference images in, Seedream 4.x
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_SET = 15  # references plus pictures out, with sequential generation

TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalServiceError",
    503: "ServiceUnavailable",
}

# status, code, message for the faults that answer with an error at once.
FAULT_ERRORS: dict[str, tuple[int, str, str]] = {
    "auth": (401, "AuthenticationError", "The API key or AK/SK in the request is missing or invalid."),
    "overdue": (
        403,
        "AccountOverdueError",
        "The request failed because your account has an overdue balance.",
    ),
    "model_not_open": (
        404,
        "ModelNotOpen",
        "Your account has not activated the model {model}. "
        "Please activate the model service in the Ark Console.",
    ),
    "access_denied": (
        403,
        "AccessDenied",
        "The request failed because you do not have access to the requested resource.",
    ),
    "rate_limit": (
        429,
        "RateLimitExceeded.EndpointRPMExceeded",
        "The Requests Per Minute (RPM) limit of the associated endpoint for your account has been exceeded.",
    ),
    "quota": (429, "QuotaExceeded", "Your account has exhausted its quota for the model {model}."),
    "content_policy_input": (
        400,
        "InputTextRiskDetection",
        "The request failed because the input text may contain sensitive information.",
    ),
    "content_policy_image": (
        400,
        "InputImageRiskDetection",
        "The request failed because the input image may contain sensitive information.",
    ),
    "server_error": (500, "InternalServiceError", "The service encountered an unexpected internal error."),
    "unavailable": (503, "ServiceUnavailable", "The service is temporarily unable to handle the request."),
}
# Refused only after the picture was drawn, when the output is checked.
OUTPUT_POLICY = (
    400,
    "OutputImageRiskDetection",
    "The request failed because the output image may contain sensitive information.",
)
FAULT_MODES = (*FAULT_ERRORS, "content_policy_output", "hang")

_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,(.*)$", re.DOTALL)
_WXH = re.compile(r"^(\d+)x(\d+)$")


@dataclass(frozen=True)
class ArkConfig:
    # Seconds a picture takes (the real one: about 10-60 s).
    image_seconds: float = 2.0
    # Seconds a result URL stays valid (the real one: 24 hours).
    url_ttl: float = 86400.0
    keys: frozenset[str] = frozenset({DEFAULT_KEY})
    # Models the account has activated; another known model answers ModelNotOpen.
    open_models: frozenset[str] = frozenset(MODELS)
    faults: tuple[tuple[str, int], ...] = ()
    long_side: int = 640
    max_files: int = 2000


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    paid: int = 0  # pictures finished, billed whether or not anyone was still listening
    abandoned: int = 0  # pictures finished after their client had gone
    images_served: int = 0
    models_used: Counter[str] = field(default_factory=Counter)
    last_request: Any = None
    # The most recent generation requests (shortened), oldest first.
    recent: deque[Any] = field(default_factory=lambda: deque(maxlen=50))
    urls: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    in_flight: InFlight = field(default_factory=InFlight)


class ArkError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param

    def response(self) -> JSONResponse:
        request_id = f"{time.strftime('%Y%m%d%H%M%S')}{secrets.token_hex(10)}"
        body = {
            "error": {
                "code": self.code,
                "message": f"{self.message} Request id: {request_id}",
                "param": self.param,
                "type": TYPES.get(self.status, "BadRequest"),
            }
        }
        return JSONResponse(body, status_code=self.status)


@dataclass(frozen=True)
class Params:
    model: str
    prompt: str
    size: tuple[int, int] | None  # None: the model picks the shape (a bare scale)
    images: list[str]
    response_format: str


def create_app(config: ArkConfig) -> FastAPI:
    app = FastAPI(title="fake Ark", docs_url=None, redoc_url=None, openapi_url=None)
    faults = FaultQueue(FAULT_MODES)
    for mode, count in config.faults:
        faults.add(mode, count=count)
    stats = Stats()
    files: OrderedDict[str, bytes] = OrderedDict()
    secret = secrets.token_bytes(32)
    # Generations go on after their client left; kept here so none is garbage-collected.
    running: set[asyncio.Task[Any]] = set()
    add_fault_routes(app, faults)
    count_in_flight(app, stats.in_flight, (PATH,))

    def sign(name: str, expires: int) -> str:
        return hmac.new(secret, f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    @app.get("/_fake/stats")
    async def get_stats() -> dict[str, Any]:
        return {
            "requests": dict(stats.requests),
            "errors": dict(stats.errors),
            "paid": stats.paid,
            "abandoned": stats.abandoned,
            "generating": len(running),
            "images_served": stats.images_served,
            "models_used": dict(stats.models_used),
            "faults_served": dict(faults.served),
            "pending_faults": faults.pending(),
            "files": len(files),
            "last_request": stats.last_request,
            "recent": list(stats.recent),
            "urls": list(stats.urls),
            **stats.in_flight.as_dict(),
        }

    @app.post(PATH)
    async def generations(request: Request) -> Response:
        stats.requests["generations"] += 1
        try:
            _authenticate(request.headers.get("authorization"), config.keys)
            body = await _json_object(request)
            stats.last_request = shorten(body)
            stats.recent.append(stats.last_request)
            model = _model(body, config.open_models)
            params = _validate(body, model)
            references = [await _reference(source, i) for i, source in enumerate(params.images, start=1)]
            # Faults go to requests that would draw, so a key check (no prompt) never
            # takes one meant for a picture.
            fault = faults.take()
            if fault is not None and fault.mode in FAULT_ERRORS:
                status, code, message = FAULT_ERRORS[fault.mode]
                raise ArkError(status, code, message.format(model=model))
        except ArkError as exc:
            stats.errors[exc.code] += 1
            return exc.response()

        seconds = config.image_seconds
        if fault is not None and fault.mode == "hang":
            seconds = fault.seconds if fault.seconds is not None else 3600.0
        refuse_output = fault is not None and fault.mode == "content_policy_output"
        # The picture is made whatever happens to this request: shielded from its
        # cancellation, finished and billed even when nobody is left to receive it.
        job = asyncio.ensure_future(
            draw(params, references[0] if references else None, seconds, refuse_output, request)
        )
        running.add(job)
        job.add_done_callback(running.discard)
        try:
            result = await asyncio.shield(job)
        except ArkError as exc:
            stats.errors[exc.code] += 1
            return exc.response()
        return JSONResponse(result)

    async def draw(
        params: Params,
        reference: Image.Image | None,
        seconds: float,
        refuse_output: bool,
        request: Request,
    ) -> dict[str, Any]:
        width, height = params.size or _shape_of(reference)
        ratio = _nearest_ratio(width, height)
        picture = asyncio.ensure_future(
            asyncio.to_thread(
                pictures.render,
                params.prompt,
                ratio=ratio,
                variant=0,
                reference=reference,
                long_side=config.long_side,
            )
        )
        await asyncio.sleep(seconds)
        data = await picture
        if refuse_output:
            raise ArkError(*OUTPUT_POLICY)
        stats.paid += 1
        stats.models_used[params.model] += 1
        if await request.is_disconnected():
            stats.abandoned += 1
        name = f"{secrets.token_hex(16)}.webp"
        files[name] = data
        while len(files) > config.max_files:
            files.popitem(last=False)
        if params.response_format == "b64_json":
            item = {"b64_json": base64.b64encode(data).decode(), "size": f"{width}x{height}"}
        else:
            expires = math.ceil(time.time() + config.url_ttl)
            base = str(request.base_url).rstrip("/")
            url = f"{base}/tos/{name}?X-Tos-Expires={expires}&X-Tos-Signature={sign(name, expires)}"
            stats.urls.append(url)
            item = {"url": url, "size": f"{width}x{height}"}
        tokens = width * height // 256  # what Ark reports: one token per 16x16 pixels
        return {
            "model": params.model,
            "created": int(time.time()),
            "data": [item],
            "usage": {"generated_images": 1, "output_tokens": tokens, "total_tokens": tokens},
        }

    @app.api_route("/tos/{name}", methods=["GET", "HEAD"])
    async def get_file(name: str, request: Request) -> Response:
        expires_arg = request.query_params.get("X-Tos-Expires", "")
        given = request.query_params.get("X-Tos-Signature", "")
        if not expires_arg.isdigit() or not hmac.compare_digest(given, sign(name, int(expires_arg))):
            return _denied("SignatureDoesNotMatch", "The request signature we calculated does not match.")
        if time.time() > int(expires_arg):
            return _denied("AccessDenied", "Request has expired")
        picture = files.get(name)
        if picture is None:
            return _denied("NoSuchKey", "The specified key does not exist.", status=404)
        if request.method == "GET":
            stats.images_served += 1
        return Response(picture, media_type="image/webp")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown_route(path: str) -> JSONResponse:
        return ArkError(404, "NotFound", f"The requested path /{path} is not found.").response()

    return app


def _authenticate(authorization: str | None, keys: frozenset[str]) -> None:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or key.strip() not in keys:
        raise ArkError(
            401, "AuthenticationError", "The API key or AK/SK in the request is missing or invalid."
        )


def _model(body: dict[str, Any], open_models: frozenset[str]) -> str:
    model = body.get("model")
    if model is None:
        raise ArkError(400, "MissingParameter", "The request failed because it is missing `model`.", "model")
    if not isinstance(model, str) or (model not in MODELS and not model.startswith("ep-")):
        raise ArkError(
            404,
            "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {model} does not exist or you do not have access to it.",
        )
    if model in MODELS and model not in open_models:
        raise ArkError(
            *FAULT_ERRORS["model_not_open"][:2], FAULT_ERRORS["model_not_open"][2].format(model=model)
        )
    return model


def _validate(body: dict[str, Any], model: str) -> Params:
    """The parameter checks, after the key and the model, as Ark makes them."""
    prompt = body.get("prompt")
    if prompt is None:
        raise ArkError(
            400, "MissingParameter", "The request failed because it is missing `prompt`.", "prompt"
        )
    if not isinstance(prompt, str) or not prompt.strip():
        raise ArkError(
            400, "InvalidParameter", "A parameter specified in the request is not valid: prompt", "prompt"
        )
    size = _size(body.get("size", "2K"))
    raw = body.get("image", [])
    images = [raw] if isinstance(raw, str) else raw
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise ArkError(
            400, "InvalidParameter", "A parameter specified in the request is not valid: image", "image"
        )
    if len(images) > MAX_IMAGES:
        raise ArkError(
            400,
            "InvalidParameter.UnsupportedImageCount",
            f"The request failed because at most {MAX_IMAGES} input images are supported.",
            "image",
        )
    sequential = body.get("sequential_image_generation", "disabled")
    if sequential not in ("auto", "disabled"):
        raise ArkError(
            400,
            "InvalidParameter",
            "A parameter specified in the request is not valid: sequential_image_generation",
            "sequential_image_generation",
        )
    options = body.get("sequential_image_generation_options") or {}
    wanted = options.get("max_images", 15) if isinstance(options, dict) else 15
    if sequential == "auto" and (not isinstance(wanted, int) or len(images) + wanted > MAX_SET):
        raise ArkError(
            400,
            "InvalidParameter",
            f"The request failed because input and output images together may be at most {MAX_SET}.",
            "sequential_image_generation_options.max_images",
        )
    response_format = body.get("response_format", "url")
    if response_format not in ("url", "b64_json"):
        raise ArkError(
            400,
            "InvalidParameter",
            "A parameter specified in the request is not valid: response_format",
            "response_format",
        )
    watermark = body.get("watermark", True)
    if not isinstance(watermark, bool):
        raise ArkError(
            400,
            "InvalidParameter",
            "A parameter specified in the request is not valid: watermark",
            "watermark",
        )
    return Params(model=model, prompt=prompt, size=size, images=images, response_format=response_format)


def _size(value: Any) -> tuple[int, int] | None:
    if isinstance(value, str) and value.upper() in SCALES:
        return None
    match = _WXH.match(value) if isinstance(value, str) else None
    if match:
        width, height = int(match.group(1)), int(match.group(2))
        if MIN_PIXELS <= width * height <= MAX_PIXELS and max(width, height) <= 16 * min(width, height):
            return width, height
    raise ArkError(
        400,
        "InvalidParameter",
        "A parameter specified in the request is not valid: size. Use 1K, 2K, 4K or WIDTHxHEIGHT "
        "with a total between 1280x720 and 4096x4096 pixels and an aspect ratio between 1/16 and 16.",
        "size",
    )


async def _reference(source: str, index: int) -> Image.Image:
    match = _DATA_URI.match(source)
    if match:
        try:
            data = base64.b64decode(match.group(1), validate=True)
        except (binascii.Error, ValueError):
            raise _bad_image(index, "its base64 data cannot be decoded") from None
    elif source.startswith(("http://", "https://")):
        try:
            async with httpx.AsyncClient(timeout=15.0, trust_env=False) as client:
                response = await client.get(source)
        except httpx.HTTPError:
            raise _bad_image(index, "it could not be downloaded") from None
        if response.status_code >= 400:
            raise _bad_image(index, f"downloading it gave HTTP {response.status_code}")
        data = response.content
    else:
        raise _bad_image(index, "it is neither a URL nor a data:image/...;base64 URI")
    if len(data) > MAX_IMAGE_BYTES:
        raise ArkError(
            400,
            "InvalidParameter.OversizedImage",
            "The request failed because the size of the input image exceeds the limit.",
            "image",
        )
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError):
        raise ArkError(
            400,
            "InvalidParameter.UnsupportedImageFormat",
            "The request failed because the image format is not supported by the API.",
            "image",
        ) from None
    return image


def _bad_image(index: int, why: str) -> ArkError:
    return ArkError(
        400,
        "InvalidParameter",
        f"A parameter specified in the request is not valid: image {index}: {why}",
        "image",
    )


def _shape_of(reference: Image.Image | None) -> tuple[int, int]:
    """A bare scale lets the model choose: square, or the reference's shape."""
    if reference is None:
        return 2048, 2048
    scale = math.sqrt(2048 * 2048 / (reference.width * reference.height))
    return round(reference.width * scale), round(reference.height * scale)


def _nearest_ratio(width: int, height: int) -> str:
    return min(
        pictures.RATIOS,
        key=lambda r: abs(math.log(pictures.RATIOS[r][0] / pictures.RATIOS[r][1] * height / width)),
    )


def _denied(code: str, message: str, *, status: int = 403) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        value = await request.json()
    except ValueError:
        raise ArkError(400, "InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ArkError(400, "InvalidParameter", "The request body must be a JSON object.")
    return value


# ------------------------------------------------------------------------ command line


def _keys(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.fakes.ark",
        description="Fake Volcengine Ark image API (Seedream) for tests and the offline demo.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102, help="0 picks a free port")
    parser.add_argument("--image-seconds", type=float, default=2.0)
    parser.add_argument("--url-ttl", type=float, default=86400.0, help="result URL lifetime, s")
    parser.add_argument(
        "--keys",
        type=_keys,
        default=frozenset({DEFAULT_KEY}),
        help=f"accepted API keys (default {DEFAULT_KEY})",
    )
    add_fault_option(parser, FAULT_MODES)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    check_fault_modes(args.fault, FAULT_MODES)
    config = ArkConfig(
        image_seconds=args.image_seconds, url_ttl=args.url_ttl, keys=args.keys, faults=tuple(args.fault)
    )
    run(create_app(config), host=args.host, port=args.port, name="ark", path="/api/v3")


if __name__ == "__main__":
    main()
