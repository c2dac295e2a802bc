"""The Moonshot client (openai SDK) and what each of its errors means for a page.

One client per process. The SDK's own retries are off: it would retry quota
exhaustion and spend the RPM budget; we classify every error ourselves.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx_sse
import jiter
import openai
from openai import AsyncOpenAI

from services.common.net import is_loopback
from services.common.settings import mask
from services.llm_worker.config import LlmSettings

log = logging.getLogger(__name__)


BUSY = "llm_busy"  # Moonshot answered: rate limit or overload
UNREACHABLE = "llm_unreachable"  # Moonshot did not answer, or broke off: 5xx, network, stall


@dataclass
class LlmError(Exception):
    """A failed attempt: `code` reaches the reader, `retryable` decides what happens next.

    `wait`: set when the failure passes by itself (BUSY or UNREACHABLE, which the reader
    is told while the page waits); such a failure is waited out within a time budget
    rather than a number of attempts.
    """

    code: str
    message: str
    retryable: bool = False
    retry_after: float | None = None
    wait: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def make_client(settings: LlmSettings) -> AsyncOpenAI:
    proxy = settings.llm_proxy
    if proxy and is_loopback(settings.moonshot_base_url):
        # An explicit proxy overrides NO_PROXY; a loopback fake must be reached directly.
        log.warning("LLM_PROXY ignored: MOONSHOT_BASE_URL is a loopback address")
        proxy = None
    http_client = httpx.AsyncClient(
        proxy=proxy,
        # Only LLM_PROXY applies: a stray ALL_PROXY in the environment must not
        # silently reroute (or break) the story writer.
        trust_env=False,
        timeout=httpx.Timeout(settings.llm_timeout, connect=10.0),
        limits=httpx.Limits(max_connections=max(16, settings.llm_concurrency * 2)),
    )
    return AsyncOpenAI(
        api_key=settings.moonshot_api_key.get_secret_value(),
        base_url=settings.moonshot_base_url,
        max_retries=0,
        http_client=http_client,
    )


_AFTER = re.compile(r"after\s+(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)


def classify(exc: Exception) -> LlmError:
    """Map an SDK or transport error to what the page should do about it."""
    if isinstance(exc, LlmError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        kind, message = _error_body(exc.body)
        status = exc.status_code
        if status == 429 and kind == "exceeded_current_quota_error":
            return LlmError("llm_quota", "The Moonshot account has no quota left; top it up.")
        if status == 429 and kind == "rate_limit_reached_error":
            match = _AFTER.search(message)
            wait = float(match.group(1)) if match else 5.0
            return LlmError("llm_rate_limited", "Moonshot rate limit reached.", True, wait, BUSY)
        if status == 429:
            return LlmError("llm_unavailable", "Moonshot is overloaded.", True, wait=BUSY)
        if status in (401, 403):
            return LlmError("llm_auth", "Moonshot refused the API key (check MOONSHOT_API_KEY).")
        if status == 404:
            return LlmError("llm_model", "Moonshot does not know the model (check MOONSHOT_MODEL).")
        if status == 400 and kind == "content_filter":
            return LlmError("llm_content_filter", "The story idea was refused by the content filter.")
        if status == 400:
            return LlmError("llm_failed", f"Moonshot rejected the request: {message[:200]}")
        if status >= 500:
            return LlmError("llm_unavailable", f"Moonshot server error ({status}).", True, wait=UNREACHABLE)
        return LlmError("llm_failed", f"Moonshot answered {status}.", True)
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return LlmError("llm_unavailable", "Moonshot did not answer in time.", True, wait=UNREACHABLE)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        message = "Moonshot could not be reached (network or proxy)."
        return LlmError("llm_unavailable", message, True, wait=UNREACHABLE)
    if isinstance(exc, openai.APIError):
        # An error object in the middle of a stream surfaces as a bare APIError.
        message = f"The stream broke off: {str(exc)[:200]}"
        return LlmError("llm_unavailable", message, True, wait=UNREACHABLE)
    return LlmError("llm_failed", f"Unexpected error: {type(exc).__name__}", True)


def _error_body(body: object) -> tuple[str, str]:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("type", "")), str(err.get("message", ""))
    return "", ""


def reached(exc: BaseException) -> bool:
    """Did the failed request reach Moonshot? Not when no connection was made (refused,
    unresolvable, no route, the proxy down): such a call is neither billed nor counted."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError):
            return False
        seen = seen.__cause__ or seen.__context__
    return True


@dataclass
class Usage:
    """What the calls of one delivery cost: every call that reached Moonshot is counted,
    the suitability check as much as the page, and the tokens of all of them added up."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def add(self, found: dict[str, int]) -> None:
        self.tokens_in += found.get("prompt_tokens", 0)
        self.tokens_out += found.get("completion_tokens", 0)

    def __bool__(self) -> bool:
        return bool(self.calls or self.tokens_in or self.tokens_out)


def _choice(chunk: dict[str, Any]) -> dict[str, Any]:
    """A stream chunk's only choice ({} when it has none)."""
    choices = chunk.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


def usage_of(chunk: dict[str, Any]) -> dict[str, int] | None:
    """Moonshot puts usage inside the last chunk's choice, not at the top level."""
    usage = _choice(chunk).get("usage")
    if not isinstance(usage, dict):
        usage = chunk.get("usage")
    if isinstance(usage, dict):
        return {k: int(v) for k, v in usage.items() if isinstance(v, int)}
    return None


def content_of(chunk: dict[str, Any]) -> str:
    delta = _choice(chunk).get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


async def stream_text(
    client: AsyncOpenAI,
    settings: LlmSettings,
    messages: list[dict[str, str]],
    usage: Usage,
    *,
    max_tokens: int | None = None,
) -> AsyncGenerator[str]:
    """Yield content pieces of one JSON-mode completion; adds the call to `usage`.

    The SDK sends the request and turns an HTTP error into its exception, as for any
    call; the stream's events are read as plain JSON (httpx-sse) rather than as the
    SDK's chunk objects: a model object built for each token was most of this worker's
    CPU, and every text delta waited on the loop it kept busy. An error object in the
    middle of the stream raises openai.APIError, as the SDK's own stream does.
    """
    request = client.chat.completions.with_streaming_response.create(  # type: ignore[call-overload]
        model=settings.moonshot_model,
        messages=messages,
        temperature=settings.moonshot_temperature,
        max_tokens=max_tokens or settings.llm_max_tokens,
        response_format={"type": "json_object"},
        stream=True,
    )
    async with contextlib.AsyncExitStack() as stack:
        try:
            response = await stack.enter_async_context(request)
        except Exception as exc:
            if reached(exc):
                usage.calls += 1
            raise
        usage.calls += 1
        found: dict[str, int] = {}
        try:
            async for event in httpx_sse.EventSource(response.http_response).aiter_sse():
                if event.data.startswith("[DONE]"):
                    break
                chunk = jiter.from_json(event.data.encode())
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error") or event.event == "error":
                    raise _stream_error(chunk, response.http_request)
                found = usage_of(chunk) or found
                if content := content_of(chunk):
                    yield content
        finally:
            # Moonshot reports a call's tokens once, in its last chunk; a stream that broke
            # before it has none to add.
            usage.add(found)


def _stream_error(chunk: dict[str, Any], request: httpx.Request) -> openai.APIError:
    error = chunk.get("error", chunk)
    message = error.get("message") if isinstance(error, dict) else None
    return openai.APIError(str(message or "An error occurred during streaming"), request, body=error)


async def check_key(client: AsyncOpenAI, settings: LlmSettings) -> str:
    """Is the Moonshot key accepted? "ok", or what is wrong and what to change."""
    key = mask(settings.moonshot_api_key.get_secret_value())
    try:
        await client.get("/users/me/balance", cast_to=object)
    except openai.APIStatusError as exc:
        if exc.status_code in (401, 403):
            return (
                f"MOONSHOT_API_KEY ({key}) rejected with {exc.status_code}: a key works only on "
                "its own platform (api.moonshot.cn or api.moonshot.ai); check MOONSHOT_BASE_URL"
            )
        return f"Moonshot answered {exc.status_code} to a credential check"
    except openai.APIError as exc:
        return f"Moonshot unreachable ({type(exc).__name__}): check MOONSHOT_BASE_URL and LLM_PROXY"
    return "ok"
