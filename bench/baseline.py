"""The sequential baseline: the same pages, done the way a simple backend does them.

For each page, one after another in this process, the same upstream calls the
services make, each awaited before the next: page 0 checks the premise (when the
llm_worker does), writes the outline and draws the character sheet (when the story
has one); then every page is written whole (not streamed), its picture drawn (from
the sheet, when there is one) and downloaded. The page is complete when its picture
is on disk. Stories run side by side; the steps of a page never overlap.

It also streams one page straight from the fake Moonshot while nothing else runs,
to see how closely the fake itself keeps to its schedule (its pacing is part of
what the pipeline is measured against).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from openai import AsyncOpenAI

from bench.floors import PageJob, reply_marks
from bench.options import Latency
from services.llm_worker import prompts

MODEL = "moonshot-v1-8k"


@dataclass(frozen=True)
class BaselinePage:
    story_id: str
    page: int
    llm_s: float
    image_s: float
    download_s: float
    total_s: float


class SimpleBackend:
    def __init__(self, moonshot_url: str, jimeng_url: str, media: Path) -> None:
        self.http = httpx.AsyncClient(timeout=120, trust_env=False)
        self.llm = AsyncOpenAI(
            api_key="sk-offline-fake-key", base_url=moonshot_url, max_retries=0, http_client=self.http
        )
        self.jimeng_url = jimeng_url
        self.media = media
        self.sheets: dict[str, str] = {}  # story id -> its character sheet as a data URI

    async def close(self) -> None:
        await self.http.aclose()

    async def complete(self, messages: list[dict[str, str]], max_tokens: int = 1500) -> str:
        reply = await self.llm.chat.completions.create(  # type: ignore[call-overload]
            model=MODEL,
            messages=messages,
            temperature=0.8,
            max_tokens=max_tokens,
            response_format={"type": "json_object"},
        )
        return str(reply.choices[0].message.content)

    async def draw(self, prompt: str, *, ratio: str = "4:3", reference: str | None = None) -> str:
        body: dict[str, object] = {
            "model": "jimeng-4.5",
            "prompt": prompt,
            "ratio": ratio,
            "resolution": "2k",
        }
        if reference is not None:
            body["images"] = [reference]
        endpoint = "compositions" if reference is not None else "generations"
        r = await self.http.post(
            f"{self.jimeng_url}/v1/images/{endpoint}",
            headers={"Authorization": "Bearer offline-fake-session"},
            json=body,
        )
        answer = r.json()
        if answer.get("code") not in (None, 0) or not answer.get("data"):
            raise RuntimeError(f"jimeng answered {str(answer)[:200]}")
        return str(answer["data"][0]["url"])

    async def download(self, url: str, name: str) -> bytes:
        r = await self.http.get(url)
        r.raise_for_status()
        await asyncio.to_thread((self.media / name).write_bytes, r.content)
        return r.content

    async def before_page(self, job: PageJob) -> None:
        """Page 0: the premise check, the outline and the character sheet, one after another."""
        if job.judge_messages is not None:
            await self.complete(job.judge_messages, max_tokens=120)
        if job.outline_messages is not None:
            await self.complete(job.outline_messages)
        if job.sheet_prompt is not None:
            url = await self.draw(job.sheet_prompt, ratio="16:9")
            data = await self.download(url, f"{job.story_id}-sheet.webp")
            self.sheets[job.story_id] = f"data:image/webp;base64,{base64.b64encode(data).decode()}"

    async def page(self, job: PageJob) -> BaselinePage:
        start = time.monotonic()
        await self.before_page(job)
        content = await self.complete(job.page_messages)
        written = time.monotonic()
        illustration = json.loads(content)["illustration"]
        reference = self.sheets.get(job.story_id) if job.has_sheet else None
        url = await self.draw(prompts.image_prompt(job.task, illustration), reference=reference)
        drawn = time.monotonic()
        await self.download(url, f"{job.story_id}-p{job.page}.webp")
        done = time.monotonic()
        return BaselinePage(
            story_id=job.story_id,
            page=job.page,
            llm_s=written - start,
            image_s=drawn - written,
            download_s=done - drawn,
            total_s=done - start,
        )


async def run_baseline(
    stories: list[list[PageJob]], *, moonshot_url: str, jimeng_url: str, media: Path
) -> list[BaselinePage]:
    await asyncio.to_thread(media.mkdir, parents=True, exist_ok=True)
    backend = SimpleBackend(moonshot_url, jimeng_url, media)
    try:

        async def story(jobs: list[PageJob]) -> list[BaselinePage]:
            return [await backend.page(job) for job in jobs]

        done = await asyncio.gather(*(story(jobs) for jobs in stories))
    finally:
        await backend.close()
    return [page for pages in done for page in pages]


async def fake_pacing(job: PageJob, *, moonshot_url: str, latency: Latency) -> dict[str, float]:
    """Stream one page straight from the fake: its last token's arrival against the schedule."""
    async with httpx.AsyncClient(timeout=120, trust_env=False) as http:
        llm = AsyncOpenAI(
            api_key="sk-offline-fake-key", base_url=moonshot_url, max_retries=0, http_client=http
        )
        start = time.monotonic()
        stream = await llm.chat.completions.create(  # type: ignore[call-overload]
            model=MODEL,
            messages=job.page_messages,
            temperature=0.8,
            max_tokens=1500,
            response_format={"type": "json_object"},
            stream=True,
        )
        pieces, first, last = [], 0.0, 0.0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                last = time.monotonic() - start
                first = first or last
                pieces.append(chunk.choices[0].delta.content)
    tokens, _, _ = reply_marks("".join(pieces))
    schedule = latency.ttft + (tokens - 1) / latency.tps
    return {
        "tokens": tokens,
        "first_token_s": round(first, 4),
        "last_token_s": round(last, 4),
        "schedule_s": round(schedule, 4),
        "drift_ms": round(1000 * (last - schedule), 1),
    }
