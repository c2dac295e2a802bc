"""The llm_worker's reading of a Moonshot stream (plain JSON events, not the SDK's chunk
objects), against the fake: the same text, the usage in the last choice, and an error in
the middle of the stream failing the attempt as the SDK's own stream would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from services.common.contracts import OutlineTask
from services.fakes.moonshot import CHUNKS_BEFORE_FAULT
from services.fakes.serving import BackgroundServer
from services.llm_worker import prompts
from services.llm_worker.config import LlmSettings
from services.llm_worker.moonshot import Usage, classify, make_client, stream_text
from tests.fakes.conftest import KEY
from tests.fakes.test_moonshot import MODEL, brief, outline_for, page_task, stream_page


@pytest.fixture
def settings(moonshot_server: BackgroundServer) -> LlmSettings:
    return LlmSettings(
        app_env="test",
        moonshot_api_key=KEY,  # type: ignore[arg-type]
        moonshot_base_url=f"{moonshot_server.url}/v1",
        moonshot_model=MODEL,
        moonshot_rpm=0,
    )


@pytest.fixture
async def client(settings: LlmSettings) -> AsyncIterator[openai.AsyncOpenAI]:
    client = make_client(settings)
    yield client
    await client.close()


async def read(client: openai.AsyncOpenAI, settings: LlmSettings, messages: Any, usage: Usage) -> list[str]:
    return [piece async for piece in stream_text(client, settings, messages, usage)]


async def test_a_page_reads_as_the_sdk_reads_it_with_its_usage(
    client: openai.AsyncOpenAI, settings: LlmSettings, llm: openai.AsyncOpenAI
) -> None:
    b = brief("zh")
    task = page_task(b, await outline_for(llm, b), 1)
    usage = Usage()
    pieces = await read(client, settings, prompts.page_messages(task), usage)
    _, sdk_text = await stream_page(llm, task)
    assert "".join(pieces) == sdk_text and len(pieces) > 20, "one piece per token, the same text"
    assert usage.calls == 1
    assert usage.tokens_out == len(pieces), "completion tokens from the last chunk's choice"
    assert usage.tokens_in > 0


async def test_an_error_in_the_middle_of_the_stream_fails_the_attempt(
    client: openai.AsyncOpenAI,
    settings: LlmSettings,
    moonshot_server: BackgroundServer,
    http: httpx.AsyncClient,
) -> None:
    await http.post(f"{moonshot_server.url}/_fake/faults", json={"mode": "mid_stream_error"})
    usage, pieces = Usage(), []
    task = OutlineTask(story_id="s1", brief=brief("en"))
    with pytest.raises(openai.APIError) as raised:
        async for piece in stream_text(client, settings, prompts.outline_messages(task), usage):
            pieces.append(piece)
    assert len(pieces) == CHUNKS_BEFORE_FAULT, "the text before the error was read"
    assert not isinstance(raised.value, openai.APIStatusError)
    error = classify(raised.value)
    assert (error.code, error.retryable) == ("llm_unavailable", True)
    assert "interrupted" in error.message
    assert usage.calls == 1 and usage.tokens_out == 0, "the call counts; no usage arrived"


async def test_an_http_error_is_the_sdks_status_error_and_the_call_counts(
    client: openai.AsyncOpenAI,
    settings: LlmSettings,
    moonshot_server: BackgroundServer,
    http: httpx.AsyncClient,
) -> None:
    await http.post(f"{moonshot_server.url}/_fake/faults", json={"mode": "quota"})
    usage = Usage()
    task = OutlineTask(story_id="s1", brief=brief("zh"))
    with pytest.raises(openai.APIStatusError) as raised:
        await read(client, settings, prompts.outline_messages(task), usage)
    assert raised.value.status_code == 429
    assert classify(raised.value).code == "llm_quota"
    assert usage.calls == 1
