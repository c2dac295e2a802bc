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
import math
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from services.fakes import pictures, serving
from services.fakes.ark_checks import (
    DEFAULT_KEY,
    FAULT_ERRORS,
    FAULT_MODES,
    MODELS,
    OUTPUT_POLICY,
    PATH,
    URLS,
    ArkError,
    Params,
    authenticate,
    check_model,
    json_object,
    reference,
    validate,
)
from services.fakes.signed import DrawingConfig, SignedFiles, comma_set


@dataclass(frozen=True)
class ArkConfig(DrawingConfig):
    url_ttl: float = 86400.0  # the real one: 24 hours
    keys: frozenset[str] = frozenset({DEFAULT_KEY})
    # Models the account has activated; another known model answers ModelNotOpen.
    open_models: frozenset[str] = frozenset(MODELS)


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    paid: int = 0  # pictures finished, billed whether or not anyone was still listening
    abandoned: int = 0  # pictures finished after their client had gone
    models_used: Counter[str] = field(default_factory=Counter)
    last_request: Any = None
    # The most recent generation requests (shortened), oldest first.
    recent: deque[Any] = field(default_factory=lambda: deque(maxlen=50))
    urls: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    in_flight: serving.InFlight = field(default_factory=serving.InFlight)


@dataclass
class Fake:
    """Everything one fake server holds; its routes read and change it."""

    config: ArkConfig
    faults: serving.FaultQueue
    files: SignedFiles
    stats: Stats = field(default_factory=Stats)
    # Generations go on after their client left; kept here so none is garbage-collected.
    running: set[asyncio.Task[Any]] = field(default_factory=set)


def create_app(config: ArkConfig) -> FastAPI:
    stats = Stats()
    app, faults = serving.fake_app("fake Ark", config, stats, modes=FAULT_MODES, paths=(PATH,))
    files = SignedFiles(URLS, ttl=config.url_ttl, max_files=config.max_files)
    fake = Fake(config=config, faults=faults, files=files, stats=stats)

    @app.get("/_fake/stats")
    async def get_stats() -> dict[str, Any]:
        stats = fake.stats
        return {
            "requests": dict(stats.requests),
            "errors": dict(stats.errors),
            "paid": stats.paid,
            "abandoned": stats.abandoned,
            "generating": len(fake.running),
            "images_served": fake.files.served,
            "models_used": dict(stats.models_used),
            **fake.faults.as_dict(),
            "files": len(fake.files),
            "last_request": stats.last_request,
            "recent": list(stats.recent),
            "urls": list(stats.urls),
            **stats.in_flight.as_dict(),
        }

    @app.post(PATH)
    async def generations(request: Request) -> Response:
        return await _generate(fake, request)

    fake.files.add_route(app)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown_route(path: str) -> JSONResponse:
        return ArkError(404, "NotFound", f"The requested path /{path} is not found.").response()

    return app


async def _generate(fake: Fake, request: Request) -> Response:
    stats = fake.stats
    stats.requests["generations"] += 1
    try:
        authenticate(request.headers.get("authorization"), fake.config.keys)
        body = await json_object(request)
        stats.last_request = serving.shorten(body)
        stats.recent.append(stats.last_request)
        model = check_model(body, fake.config.open_models)
        params = validate(body, model)
        references = [await reference(source, i) for i, source in enumerate(params.images, start=1)]
        # Faults go to requests that would draw, so a key check (no prompt) never
        # takes one meant for a picture.
        fault = fake.faults.take()
        if fault is not None and fault.mode in FAULT_ERRORS:
            status, code, message = FAULT_ERRORS[fault.mode]
            raise ArkError(status, code, message.format(model=model))
    except ArkError as exc:
        stats.errors[exc.code] += 1
        return exc.response()

    # The picture is made whatever happens to this request: shielded from its
    # cancellation, finished and billed even when nobody is left to receive it.
    job = asyncio.ensure_future(_draw(fake, params, references[0] if references else None, fault, request))
    fake.running.add(job)
    job.add_done_callback(fake.running.discard)
    try:
        result = await asyncio.shield(job)
    except ArkError as exc:
        stats.errors[exc.code] += 1
        return exc.response()
    return JSONResponse(result)


async def _draw(
    fake: Fake,
    params: Params,
    picture: Image.Image | None,
    fault: serving.Fault | None,
    request: Request,
) -> dict[str, Any]:
    seconds = fake.config.image_seconds
    if fault is not None and fault.mode == "hang":
        seconds = fault.seconds if fault.seconds is not None else 3600.0
    width, height = params.size or _shape_of(picture)
    rendering = asyncio.ensure_future(
        asyncio.to_thread(
            pictures.render,
            params.prompt,
            ratio=_nearest_ratio(width, height),
            variant=0,
            reference=picture,
            long_side=fake.config.long_side,
        )
    )
    await asyncio.sleep(seconds)
    data = await rendering
    if fault is not None and fault.mode == "content_policy_output":
        raise ArkError(*OUTPUT_POLICY)
    fake.stats.paid += 1
    fake.stats.models_used[params.model] += 1
    if await request.is_disconnected():
        fake.stats.abandoned += 1
    name = fake.files.keep(data)
    if params.response_format == "b64_json":
        item = {"b64_json": base64.b64encode(data).decode(), "size": f"{width}x{height}"}
    else:
        url = fake.files.url(request, name)
        fake.stats.urls.append(url)
        item = {"url": url, "size": f"{width}x{height}"}
    tokens = width * height // 256  # what Ark reports: one token per 16x16 pixels
    return {
        "model": params.model,
        "created": int(time.time()),
        "data": [item],
        "usage": {"generated_images": 1, "output_tokens": tokens, "total_tokens": tokens},
    }


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


# ------------------------------------------------------------------------ command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = serving.fake_parser(
        "ark",
        description="Fake Volcengine Ark image API (Seedream) for tests and the offline demo.",
        port=8102,
    )
    parser.add_argument("--image-seconds", type=float, default=2.0)
    parser.add_argument("--url-ttl", type=float, default=86400.0, help="result URL lifetime, s")
    parser.add_argument(
        "--keys",
        type=comma_set,
        default=frozenset({DEFAULT_KEY}),
        help=f"accepted API keys (default {DEFAULT_KEY})",
    )
    serving.add_fault_option(parser, FAULT_MODES)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    serving.check_fault_modes(args.fault, FAULT_MODES)
    config = ArkConfig(
        image_seconds=args.image_seconds, url_ttl=args.url_ttl, keys=args.keys, faults=tuple(args.fault)
    )
    serving.run(create_app(config), host=args.host, port=args.port, name="ark", path="/api/v3")


if __name__ == "__main__":
    main()
