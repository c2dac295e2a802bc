"""How the fake jimeng-api draws: who is let through, what a queued fault does, and
what a generation costs and answers (docs/upstreams.md).

A generation goes on when its client leaves and is paid for when it finishes, so
the drawing runs as its own task, shielded from the request's cancellation.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from services.fakes import pictures, serving
from services.fakes.jimeng_checks import (
    _US,
    FAULT_ERRORS,
    IMAGES_PER_REQUEST,
    LOGIN_EXPIRED,
    MULTI_PICTURE,
    SLOW_FAULTS,
    UNREACHABLE,
    UNREACHABLE_SECONDS,
    UPLOAD_UNREACHABLE_SECONDS,
    US_MODELS,
    Failure,
    Params,
    fail,
    json_object,
    reference,
    small,
    split_ids,
    validate,
)

if TYPE_CHECKING:
    from services.fakes.jimeng import Fake


def add_drawing_routes(app: FastAPI, fake: Fake) -> None:
    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Response:
        return await _generate(fake, request, composition=False)

    @app.post("/v1/images/compositions")
    async def compositions(request: Request) -> Response:
        return await _generate(fake, request, composition=True)


async def _generate(fake: Fake, request: Request, *, composition: bool) -> Response:
    stats = fake.stats
    stats.requests["compositions" if composition else "generations"] += 1
    body = await json_object(request)
    stats.last_request = serving.shorten(body)
    try:
        params = validate(body, request.headers.get("authorization"), composition)
        await _admit(fake, params, composition=composition)
        picture = await reference(request, params.images[0]) if params.images else None
        seconds = await _fault_or_seconds(fake, request, fake.faults.take())
    except Failure as exc:
        return fail(exc.code, exc.message)
    if isinstance(seconds, Response):
        return seconds

    stats.models_used[params.model] += 1
    # Upstream draws whether or not the client waits for it, and charges for it.
    drawing = asyncio.ensure_future(_draw(fake, params, picture, seconds))
    fake.running.add(drawing)
    drawing.add_done_callback(fake.running.discard)
    try:
        images = await asyncio.shield(drawing)
    except asyncio.CancelledError:
        stats.paid_unseen += 1
        raise
    if await request.is_disconnected():
        stats.paid_unseen += 1
    return _answer(fake, request, params, images, composition=composition)


async def _admit(fake: Fake, params: Params, *, composition: bool) -> None:
    """The session and upstream checks, with the time the real server takes for each."""
    # Like the real one: one id at random, no failover, so one dead id among
    # several shows up as random failures.
    session_id = fake.pick.choice(split_ids(params.authorization))
    fake.stats.sessions_used[session_id] += 1
    if _US.match(session_id) and params.model not in US_MODELS:
        raise Failure(-1000, f'国际版不支持模型 "{params.model}"。支持的模型: {", ".join(US_MODELS)}')
    if fake.upstream_down:
        if composition:
            await asyncio.sleep(UPLOAD_UNREACHABLE_SECONDS * fake.scale)
            raise Failure(-2007, f"图片上传失败: {UNREACHABLE}")
        await asyncio.sleep(UNREACHABLE_SECONDS * fake.scale)
        raise Failure(-1000, UNREACHABLE)
    if not fake.sessions.is_live(session_id):
        await asyncio.sleep(1.0 * fake.scale)  # one round trip upstream
        raise Failure(-2002, LOGIN_EXPIRED)
    if not fake.sessions.has_credits(session_id):
        await asyncio.sleep(1.0 * fake.scale)
        raise Failure(-2009, "[积分不足]: credit prededuct not enough")
    if params.model.startswith("jimeng-4") and MULTI_PICTURE.search(params.prompt):
        fake.stats.multi_picture_prompts += 1


async def _fault_or_seconds(fake: Fake, request: Request, fault: serving.Fault | None) -> float | Response:
    """How long the drawing takes, or the answer a queued fault gives instead."""
    seconds = fake.config.image_seconds
    if fault is None:
        return seconds
    if fault.mode == "slow":
        return fault.seconds if fault.seconds is not None else 60.0
    if fault.mode == "hang":
        if await _hold(request, fault.seconds if fault.seconds is not None else 3600.0):
            return Response(status_code=499)  # nobody is listening any more
        return seconds
    if fault.mode in SLOW_FAULTS:
        await asyncio.sleep(fake.config.image_seconds)
    elif fault.mode == "plain_error":  # its message says: a 45 s upstream timeout
        await asyncio.sleep(UNREACHABLE_SECONDS * fake.scale)
    if fault.mode == "empty_data":
        return JSONResponse({"created": int(time.time()), "data": []})
    raise Failure(*FAULT_ERRORS[fault.mode])


async def _draw(
    fake: Fake, params: Params, picture: Image.Image | None, seconds: float
) -> list[bytes | Callable[[], bytes]]:
    """One generation upstream, paid for when it is done."""
    # The configured time is the whole wait: the first picture is rendered while
    # waiting, the other three only if someone downloads them (the way a client that
    # keeps one of the four costs this fake one render, not four).
    # The three kept for later hold a small copy of the reference, not the upload.
    long_side = fake.config.long_side
    later = small(picture, long_side // 2)
    draw = [
        functools.partial(
            pictures.render,
            params.prompt,
            ratio=params.ratio,
            variant=i,
            reference=picture if i == 0 else later,
            long_side=long_side,
        )
        for i in range(IMAGES_PER_REQUEST)
    ]
    first = asyncio.ensure_future(asyncio.to_thread(draw[0]))
    await asyncio.sleep(seconds)
    images: list[bytes | Callable[[], bytes]] = [await first, *draw[1:]]
    fake.stats.paid += 1
    return images


def _answer(
    fake: Fake,
    request: Request,
    params: Params,
    images: list[bytes | Callable[[], bytes]],
    *,
    composition: bool,
) -> Response:
    data: list[dict[str, str]] = []
    for picture in images:
        if params.response_format == "b64_json":
            picture = picture if isinstance(picture, bytes) else picture()
            data.append({"b64_json": base64.b64encode(picture).decode()})
            fake.files.keep(picture)
        else:
            url = fake.files.url(request, fake.files.keep(picture))
            data.append({"url": url})
            fake.stats.urls.append(url)
    result: dict[str, Any] = {"created": int(time.time()), "data": data}
    if composition:
        result |= {
            "input_images": len(params.images),
            "composition_type": "multi_image_synthesis",
        }
    return JSONResponse(result)


async def _hold(request: Request, seconds: float) -> bool:
    """Hold a request open like a long upstream queue; True if the client left meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.2))
        if await request.is_disconnected():
            return True
    return False
