"""A fake Moonshot (Kimi) chat-completions API, faithful where clients trip.

    python -m services.fakes.moonshot --port 8801 [--api-key K] [--ttft 0.3] [--tps 40]

What it copies from the real service (docs/upstreams.md): Bearer auth, the model
list, temperature in [0, 1], `max_tokens` defaulting to 1024, SSE streaming whose
usage arrives inside `choices[0]` of the last chunk, error bodies
`{"error": {"type", "message"}}` with Moonshot's statuses and types, and an error
object in the middle of a stream. Its answers are built in `chatreply`, from the
text of `storytext`, which answers the llm_worker's prompts with small real stories.

Control (no auth): `POST /_fake/faults {"mode", "count", "seconds"}` makes the next
`count` authenticated chat requests fail in `mode`; with `"lasting": S` instead of a
count, every chat request fails so for S seconds (a rate limit or an outage that lasts,
e.g. `{"mode": "rate_limit", "lasting": 10}` answers each call in those 10 s with 429
"try again after 1 seconds", as Moonshot's RPM limit does); `DELETE /_fake/faults` clears;
`GET /_fake/stats` counts what happened, with the chat completions being served now
(`in_flight`, `peak_in_flight`: a stream counts until it ends; and their integral over
time, see serving.InFlight).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.fakes import serving
from services.fakes.chatreply import Reply, reply_to

DEFAULT_MODELS = (
    "moonshot-v1-8k",
    "moonshot-v1-32k",
    "moonshot-v1-128k",
    "moonshot-v1-auto",
    "kimi-k2-0905-preview",
    "kimi-k2-turbo-preview",
)

# status, error type, message; {seconds} and {model} are filled in when served.
ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "rate_limit_reached_error",
        "Your account org-fake<ak-fake> request reached organization max RPM: 3, "
        "please try again after {seconds} seconds",
    ),
    "engine_overloaded": (
        429,
        "engine_overloaded_error",
        "The engine is currently overloaded, please try again later",
    ),
    "quota": (
        429,
        "exceeded_current_quota_error",
        "Your account org-fake<ak-fake> is suspended or has exceeded its current quota, "
        "please check your plan and billing details",
    ),
    "auth": (401, "invalid_authentication_error", "Invalid Authentication"),
    "permission": (
        403,
        "permission_denied_error",
        "The API you are accessing is not open to your account",
    ),
    "model_not_found": (
        404,
        "resource_not_found_error",
        "Not found the model {model} or Permission denied",
    ),
    "content_filter": (
        400,
        "content_filter",
        "The request was rejected because it was considered high risk",
    ),
    "server_error": (500, "server_error", "Internal server error, please retry later"),
}
STREAM_FAULTS = ("mid_stream_error", "stall")
FAULT_MODES = (*ERRORS, *STREAM_FAULTS)

# How many content chunks a broken stream delivers before it breaks: enough that a
# client has already shown text to the reader and must cope with taking it back.
CHUNKS_BEFORE_FAULT = 3

# The one slow call: counted in `in_flight` while it is served.
CHAT = "/v1/chat/completions"


@dataclass(frozen=True)
class MoonshotConfig:
    # None: any non-empty key is accepted (the offline demo has no key).
    api_key: str | None = None
    # Seconds before the first content token, then tokens per second (<= 0: no wait).
    ttft: float = 0.3
    tps: float = 40.0
    models: tuple[str, ...] = DEFAULT_MODELS
    balance: float = 49.58894
    # (mode, count) queued at start, as `--fault MODE[:COUNT]` does.
    faults: tuple[tuple[str, int], ...] = ()


@dataclass
class Stats:
    requests: int = 0
    streams: int = 0
    completions: int = 0
    models: dict[str, int] = field(default_factory=dict)
    last_request: Any = None
    # Chat completions being served, streams until their last byte.
    in_flight: serving.InFlight = field(default_factory=serving.InFlight)


def create_app(config: MoonshotConfig) -> FastAPI:
    stats = Stats()
    app, faults = serving.fake_app("fake moonshot", config, stats, modes=FAULT_MODES, paths=(CHAT,))

    def unauthorized(request: Request) -> JSONResponse | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key or config.api_key not in (None, key):
            return error(401, "invalid_authentication_error", "Invalid Authentication")
        return None

    @app.get("/_fake/stats")
    async def get_stats() -> dict[str, Any]:
        return {
            "requests": stats.requests,
            "streams": stats.streams,
            "completions": stats.completions,
            "models": stats.models,
            **faults.as_dict(),
            "last_request": stats.last_request,
            **stats.in_flight.as_dict(),
        }

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        if denied := unauthorized(request):
            return denied
        data = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "moonshot"}
            for m in config.models
        ]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/v1/users/me/balance")
    async def balance(request: Request) -> Response:
        if denied := unauthorized(request):
            return denied
        voucher = 0.0
        data = {
            "available_balance": config.balance + voucher,
            "voucher_balance": voucher,
            "cash_balance": config.balance,
        }
        return JSONResponse({"code": 0, "data": data, "scode": "0x0", "status": True})

    @app.post(CHAT)
    async def chat(request: Request) -> Response:
        if denied := unauthorized(request):
            return denied
        return await _chat(request, config=config, stats=stats, faults=faults)

    return app


async def _chat(
    request: Request, *, config: MoonshotConfig, stats: Stats, faults: serving.FaultQueue
) -> Response:
    stats.requests += 1
    try:
        body = await request.json()
    except ValueError:
        return error(400, "invalid_request_error", "Invalid request: body is not JSON")
    if not isinstance(body, dict):
        return error(400, "invalid_request_error", "Invalid request: body must be an object")
    stats.last_request = serving.shorten(body, limit=2000)
    model = body.get("model")

    fault = faults.take()
    if fault is not None and fault.mode in ERRORS:
        status, kind, message = ERRORS[fault.mode]
        seconds = fault.seconds if fault.seconds is not None else 1
        return error(status, kind, message.format(seconds=f"{seconds:g}", model=model))
    refused = _refused(body, config)
    if refused is not None:
        return refused

    stats.models[body["model"]] = stats.models.get(body["model"], 0) + 1
    reply = reply_to(body)
    if body.get("stream"):
        stats.streams += 1
        return StreamingResponse(
            _sse(reply, fault, config=config, stats=stats),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    if fault is not None and fault.mode == "mid_stream_error":
        # Without a stream the same upstream failure can only be a plain 500.
        return error(500, "server_error", "Internal server error, please retry later")
    if fault is not None and fault.mode == "stall":
        await asyncio.sleep(fault.seconds if fault.seconds is not None else 3600.0)
    await asyncio.sleep(delay(config, len(reply.tokens)))
    stats.completions += 1
    return JSONResponse(reply.completion())


def _refused(body: dict[str, Any], config: MoonshotConfig) -> JSONResponse | None:
    """The request checks, in Moonshot's order; None when the request is good."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return error(400, "invalid_request_error", "Invalid request: model is required")
    if model not in config.models:
        _, kind, message = ERRORS["model_not_found"]
        return error(404, kind, message.format(model=model))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error(400, "invalid_request_error", "Invalid request: messages is required")
    temperature = body.get("temperature", 0.3)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
        return error(
            400,
            "invalid_request_error",
            f"Invalid request: temperature {temperature!r} is out of range, it must be between 0 and 1",
        )
    max_tokens = body.get("max_tokens") or 1024
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return error(400, "invalid_request_error", "Invalid request: max_tokens is invalid")
    return None


async def _sse(
    reply: Reply, fault: serving.Fault | None, *, config: MoonshotConfig, stats: Stats
) -> AsyncIterator[str]:
    mode = fault.mode if fault is not None else None
    yield event(reply.chunk({"role": "assistant", "content": ""}))
    if config.ttft > 0:
        await asyncio.sleep(config.ttft)
    for i, token in enumerate(reply.tokens):
        if i == CHUNKS_BEFORE_FAULT and mode == "mid_stream_error":
            message = "The stream was interrupted by an internal error, please retry"
            yield event({"error": {"type": "server_error", "message": message}})
            return
        if i == CHUNKS_BEFORE_FAULT and fault is not None and mode == "stall":
            # Silence, not a keep-alive: the client's read timeout must notice.
            await asyncio.sleep(fault.seconds if fault.seconds is not None else 3600.0)
        if i and config.tps > 0:
            await asyncio.sleep(1 / config.tps)
        yield event(reply.chunk({"content": token}))
    last = reply.chunk({}, finish=reply.finish)
    # Moonshot puts usage inside the choice, not at the top level as OpenAI does.
    last["choices"][0]["usage"] = reply.usage
    yield event(last)
    yield "data: [DONE]\n\n"
    stats.completions += 1


def error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def delay(config: MoonshotConfig, tokens: int) -> float:
    per_token = 1 / config.tps if config.tps > 0 else 0.0
    return max(config.ttft, 0.0) + per_token * max(tokens - 1, 0)


# ------------------------------------------------------------------------ command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = serving.fake_parser(
        "moonshot",
        description="Fake Moonshot chat-completions API for tests and the offline demo.",
        port=8801,
    )
    parser.add_argument("--api-key", help="only this key is accepted (default: any key)")
    parser.add_argument("--ttft", type=float, default=0.3, help="seconds to first token")
    parser.add_argument("--tps", type=float, default=40.0, help="tokens per second (0: no wait)")
    parser.add_argument("--models", help="comma-separated model ids to accept")
    parser.add_argument("--balance", type=float, default=49.58894)
    serving.add_fault_option(parser, FAULT_MODES)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    serving.check_fault_modes(args.fault, FAULT_MODES)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None
    config = MoonshotConfig(
        api_key=args.api_key,
        ttft=args.ttft,
        tps=args.tps,
        models=models or DEFAULT_MODELS,
        balance=args.balance,
        faults=tuple(args.fault),
    )
    serving.run(create_app(config), host=args.host, port=args.port, name="moonshot", path="/v1")


if __name__ == "__main__":
    main()
