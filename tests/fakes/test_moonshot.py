"""The Moonshot fake, seen through the real openai SDK as the llm_worker sees it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from services.common.contracts import Outline, OutlineTask, PageSoFar, PageTask, StoryBrief
from services.fakes.serving import BackgroundServer
from services.llm_worker import prompts
from tests.fakes.conftest import KEY

MODEL = "moonshot-v1-8k"
CJK = re.compile(r"[\u4e00-\u9fff]")


def brief(language: Any = "zh", pages: int = 4) -> StoryBrief:
    premise = "一只怕黑的小刺猬想去看星星" if language == "zh" else "A shy dragon learns to fly"
    return StoryBrief(premise=premise, age=5, language=language, style="水彩", total_pages=pages)


async def complete(llm: openai.AsyncOpenAI, messages: Any) -> dict[str, Any]:
    response = await llm.chat.completions.create(
        model=MODEL,
        messages=messages,
        response_format={"type": "json_object"},
        temperature=0.3,
    )
    content = response.choices[0].message.content
    assert content is not None
    result: dict[str, Any] = json.loads(content)
    return result


async def outline_for(llm: openai.AsyncOpenAI, b: StoryBrief) -> Outline:
    task = OutlineTask(story_id="s1", brief=b)
    return Outline.model_validate(await complete(llm, prompts.outline_messages(task)))


async def stream_page(llm: openai.AsyncOpenAI, task: PageTask) -> tuple[list[Any], str]:
    messages: Any = prompts.page_messages(task)
    stream = await llm.chat.completions.create(
        model=MODEL,
        messages=messages,
        response_format={"type": "json_object"},
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


def body_type(error: openai.APIError) -> object:
    body: Any = error.body
    return body["type"]


def page_task(b: StoryBrief, outline: Outline, page: int, direction: str | None = None) -> PageTask:
    so_far = [PageSoFar(index=i, text=f"page {i}") for i in range(page)]
    return PageTask(
        story_id="s1",
        page=page,
        brief=b,
        outline=outline,
        story_so_far=so_far,
        direction=direction,
    )


def test_context_marker_matches_the_prompts() -> None:
    from services.fakes import storytext

    assert storytext.CONTEXT_MARKER == prompts.CONTEXT_MARKER


async def test_outline_has_every_field_and_one_arc_line_per_page(llm: openai.AsyncOpenAI) -> None:
    outline = await outline_for(llm, brief("zh", pages=5))
    assert outline.title and outline.style and outline.setting
    assert len(outline.arc) == 5
    assert 1 <= len(outline.characters) <= 3
    assert "hedgehog" in outline.characters[0].look  # the premise's hero
    assert not CJK.search(outline.style)  # the illustrator reads English


async def test_streamed_zh_page_is_moonshot_shaped(llm: openai.AsyncOpenAI) -> None:
    b = brief("zh")
    outline = await outline_for(llm, b)
    chunks, text = await stream_page(llm, page_task(b, outline, 0))

    first = chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", "")
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop"
    usage = last.model_extra.get("usage")
    assert usage and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert chunks[-1].usage is None  # not at the top level, unlike OpenAI
    assert len(chunks) > 10  # token by token, not one lump

    page = json.loads(text)
    assert list(page) == ["illustration", "text", "choices", "alt"]
    assert CJK.search(page["text"]) and 40 <= len(page["text"]) <= 120
    assert 2 <= len(page["choices"]) <= 3
    assert all(CJK.search(c) for c in page["choices"])
    assert outline.characters[0].name in page["illustration"]
    assert not CJK.search(
        page["illustration"].replace(outline.characters[0].name, "").replace(outline.characters[1].name, "")
    )


async def test_last_page_ends_the_story_without_choices(llm: openai.AsyncOpenAI) -> None:
    for language, end in (("zh", "（完）"), ("en", "The End.")):
        b = brief(language, pages=3)
        outline = await outline_for(llm, b)
        _, text = await stream_page(llm, page_task(b, outline, 2, direction=None))
        page = json.loads(text)
        assert page["choices"] == []
        assert page["text"].endswith(end)


async def test_page_follows_the_reader(llm: openai.AsyncOpenAI) -> None:
    b = brief("en", pages=4)
    outline = await outline_for(llm, b)
    _, text = await stream_page(llm, page_task(b, outline, 0))
    first = json.loads(text)
    pages = []
    for choice in first["choices"][:2]:
        _, text = await stream_page(llm, page_task(b, outline, 1, direction=choice))
        pages.append(json.loads(text)["text"])
    assert pages[0] != pages[1]  # a different choice, a different page

    typed = "the dragon sings a song to the moon"
    _, text = await stream_page(llm, page_task(b, outline, 1, direction=typed))
    assert "The dragon sings a song to the moon" in json.loads(text)["text"]


async def test_pages_vary_and_repeat_exactly(llm: openai.AsyncOpenAI) -> None:
    b = brief("zh", pages=5)
    outline = await outline_for(llm, b)
    texts = []
    for i in range(5):
        _, text = await stream_page(llm, page_task(b, outline, i))
        texts.append(json.loads(text)["text"])
    assert len(set(texts)) == 5
    _, again = await stream_page(llm, page_task(b, outline, 3))
    assert json.loads(again)["text"] == texts[3]


async def test_non_stream_has_top_level_usage(llm: openai.AsyncOpenAI) -> None:
    response = await llm.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    assert response.object == "chat.completion"
    assert response.usage is not None and response.usage.completion_tokens > 0
    assert response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"


async def test_json_mode_without_context_is_an_empty_object(llm: openai.AsyncOpenAI) -> None:
    response = await llm.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "reply in JSON"}],
        response_format={"type": "json_object"},
    )
    assert response.choices[0].message.content == "{}"


async def test_max_tokens_cuts_the_reply(llm: openai.AsyncOpenAI) -> None:
    messages: Any = prompts.page_messages(page_task(brief("en"), Outline(title="t", style="s"), 0))
    response = await llm.chat.completions.create(model=MODEL, messages=messages, max_tokens=5)
    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None and response.usage.completion_tokens == 5


async def test_missing_or_wrong_key_is_401(
    moonshot_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    client = openai.AsyncOpenAI(base_url=f"{moonshot_server.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    await client.close()
    assert caught.value.status_code == 401
    assert caught.value.body == {"type": "invalid_authentication_error", "message": "Invalid Authentication"}
    # The SDK cannot send no key at all; a bare request can.
    missing = await http.post(f"{moonshot_server.url}/v1/chat/completions", json={})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_authentication_error"


async def test_any_key_is_accepted_without_api_key(
    start_moonshot: Callable[..., BackgroundServer],
) -> None:
    server = start_moonshot(api_key=None)
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="anything", max_retries=0)
    models = await client.models.list()
    await client.close()
    assert "moonshot-v1-8k" in [m.id for m in models.data]


async def test_unknown_model_and_bad_temperature(llm: openai.AsyncOpenAI) -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as not_found:
        await llm.chat.completions.create(model="moonshot-v0-gone", messages=messages)
    assert body_type(not_found.value) == "resource_not_found_error"
    with pytest.raises(openai.BadRequestError) as bad:
        await llm.chat.completions.create(model=MODEL, messages=messages, temperature=1.5)
    assert body_type(bad.value) == "invalid_request_error"


async def test_balance_and_models(moonshot_server: BackgroundServer, http: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    balance = (await http.get(f"{moonshot_server.url}/v1/users/me/balance", headers=headers)).json()
    assert balance["code"] == 0 and balance["status"] is True and balance["scode"] == "0x0"
    assert set(balance["data"]) == {"available_balance", "voucher_balance", "cash_balance"}
    assert (await http.get(f"{moonshot_server.url}/v1/users/me/balance")).status_code == 401


@pytest.mark.parametrize(
    "mode, error, status, kind",
    [
        ("rate_limit", openai.RateLimitError, 429, "rate_limit_reached_error"),
        ("engine_overloaded", openai.RateLimitError, 429, "engine_overloaded_error"),
        ("quota", openai.RateLimitError, 429, "exceeded_current_quota_error"),
        ("auth", openai.AuthenticationError, 401, "invalid_authentication_error"),
        ("permission", openai.PermissionDeniedError, 403, "permission_denied_error"),
        ("model_not_found", openai.NotFoundError, 404, "resource_not_found_error"),
        ("content_filter", openai.BadRequestError, 400, "content_filter"),
        ("server_error", openai.InternalServerError, 500, "server_error"),
    ],
)
async def test_fault_modes(
    llm: openai.AsyncOpenAI,
    moonshot_server: BackgroundServer,
    http: httpx.AsyncClient,
    mode: str,
    error: type[openai.APIStatusError],
    status: int,
    kind: str,
) -> None:
    await http.post(f"{moonshot_server.url}/_fake/faults", json={"mode": mode, "count": 2})
    messages: Any = [{"role": "user", "content": "hi"}]
    for stream in (False, True):
        with pytest.raises(error) as caught:
            await llm.chat.completions.create(model=MODEL, messages=messages, stream=stream)
        assert caught.value.status_code == status
        assert body_type(caught.value) == kind
    # The count is used up: the next request is healthy.
    assert (await llm.chat.completions.create(model=MODEL, messages=messages)).choices
    stats = (await http.get(f"{moonshot_server.url}/_fake/stats")).json()
    assert stats["faults_served"] == {mode: 2} and stats["pending_faults"] == []


async def test_rate_limit_says_how_long_to_wait(
    llm: openai.AsyncOpenAI, moonshot_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    await http.post(f"{moonshot_server.url}/_fake/faults", json={"mode": "rate_limit", "seconds": 7})
    with pytest.raises(openai.RateLimitError) as caught:
        await llm.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert "max RPM: 3, please try again after 7 seconds" in caught.value.message


async def test_mid_stream_error_surfaces_while_iterating(
    llm: openai.AsyncOpenAI, moonshot_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    await http.post(f"{moonshot_server.url}/_fake/faults", json={"mode": "mid_stream_error"})
    stream = await llm.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert body_type(caught.value) == "server_error"
    assert len([c for c in received if c]) == 3  # some text arrived before the break


async def test_stall_trips_the_read_timeout(
    moonshot_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    await http.post(f"{moonshot_server.url}/_fake/faults", json={"mode": "stall", "seconds": 5})
    client = openai.AsyncOpenAI(
        base_url=f"{moonshot_server.url}/v1",
        api_key=KEY,
        max_retries=0,
        timeout=httpx.Timeout(5, read=0.3),
    )
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], stream=True
    )
    started = time.monotonic()
    # Once the stream is open, the SDK no longer wraps transport errors: a client
    # sees httpx.ReadTimeout itself, not openai.APITimeoutError.
    with pytest.raises(httpx.ReadTimeout):
        async for _ in stream:
            pass
    await client.close()
    assert time.monotonic() - started < 3
    # The fake is still serving others while that stream sleeps.
    models = await http.get(f"{moonshot_server.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert models.status_code == 200


async def test_pacing_follows_ttft_and_tps(start_moonshot: Callable[..., BackgroundServer]) -> None:
    server = start_moonshot(ttft=0.3, tps=100)
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], stream=True
    )
    first_text_at = None
    count = 0
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            first_text_at = first_text_at or time.monotonic() - started
            count += 1
    total = time.monotonic() - started
    await client.close()
    assert first_text_at is not None and first_text_at >= 0.28
    assert total >= 0.28 + (count - 1) / 100 * 0.9


async def test_faults_from_the_command_line_config(
    start_moonshot: Callable[..., BackgroundServer],
) -> None:
    server = start_moonshot(faults=(("server_error", 1),))
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert (
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    ).choices
    await client.close()


async def test_unknown_fault_mode_is_refused(
    moonshot_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    response = await http.post(f"{moonshot_server.url}/_fake/faults", json={"mode": "nope"})
    assert response.status_code == 400
    assert "rate_limit" in response.json()["error"]
    assert (await http.delete(f"{moonshot_server.url}/_fake/faults")).json() == {"pending": []}


@pytest.mark.parametrize(
    "mode, error, kind",
    [
        ("rate_limit", openai.RateLimitError, "rate_limit_reached_error"),
        ("engine_overloaded", openai.RateLimitError, "engine_overloaded_error"),
        ("server_error", openai.InternalServerError, "server_error"),
    ],
)
async def test_a_lasting_fault_fails_every_call_until_it_ends(
    llm: openai.AsyncOpenAI,
    moonshot_server: BackgroundServer,
    http: httpx.AsyncClient,
    mode: str,
    error: type[openai.APIStatusError],
    kind: str,
) -> None:
    lasting = 1.0
    queued = await http.post(f"{moonshot_server.url}/_fake/faults", json={"mode": mode, "lasting": lasting})
    assert queued.json()["pending"][0]["mode"] == mode
    started = time.monotonic()
    messages: Any = [{"role": "user", "content": "hi"}]
    failed = 0
    while time.monotonic() - started < lasting - 0.2:
        with pytest.raises(error) as caught:
            await llm.chat.completions.create(model=MODEL, messages=messages, stream=failed % 2 == 1)
        assert body_type(caught.value) == kind
        if mode == "rate_limit":
            assert "please try again after 1 seconds" in caught.value.message
        failed += 1
    assert failed >= 5, "every call in the window fails, not only the first few"
    await asyncio.sleep(max(0.0, started + lasting + 0.05 - time.monotonic()))
    # Over: healthy again, and the window is gone from the queue.
    assert (await llm.chat.completions.create(model=MODEL, messages=messages)).choices
    stats = (await http.get(f"{moonshot_server.url}/_fake/stats")).json()
    assert stats["faults_served"] == {mode: failed} and stats["pending_faults"] == []


async def test_a_lasting_fault_is_refused_without_a_positive_duration(
    moonshot_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    url = f"{moonshot_server.url}/_fake/faults"
    response = await http.post(url, json={"mode": "rate_limit", "lasting": 0})
    assert response.status_code == 400
    assert "lasting" in response.json()["error"]
