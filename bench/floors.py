"""The floor: how fast a page could possibly be, given the fakes' latencies and its content.

The fake Moonshot answers deterministically from the prompt (services.fakes.storytext),
splits the reply into tokens with its own `tokenize`, waits `ttft`, sends the first
token, then one token every 1/tps seconds. So the reply the llm_worker streamed for
a page can be rebuilt here from the story store (the same task, the same prompt) and
each mark of the page placed on that schedule:

  first text delta  = ttft + (index of the first token of "text") / tps
  text done         = ttft + (tokens - 1) / tps
  picture done      = ttft + (index of the token closing "illustration") / tps + image_seconds
  page complete     = max(text done, picture done)

Page 0 waits for what comes before it: the suitability check of the premise (when the
llm_worker makes one) and the outline, each a call of ttft + (tokens - 1) / tps. When the
story has a character sheet, a page's picture cannot start before the sheet exists either.
The sheet is asked for while the outline is written, as soon as its characters and style
are complete (services.llm_worker.writer.OutlineReader, fed the fake's tokens here):

  sheet done        = check + ttft + (index of that outline token) / tps + image_seconds
  picture done      = max(illustration complete, sheet done) + image_seconds

Later pages find the sheet drawn long before their illustration is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.options import Latency
from services.common import contracts as c
from services.fakes import storytext
from services.fakes.chatreply import tokenize
from services.llm_worker import prompts
from services.llm_worker.writer import OutlineReader


@dataclass(frozen=True)
class Floor:
    """Seconds from the page's start (the POST for page 0, the choice for later pages)."""

    first_delta: float
    text_done: float
    image_done: float
    complete: float
    # The parts: what page 0 waits for before its own call (premise check, outline),
    # then from the start of the page's own call: its illustration and its whole text;
    # and how long a picture waits for the character sheet beyond its illustration, and
    # when the sheet is done counted from the outline's end (0 when there is none).
    before_s: float
    illustration_s: float
    text_s: float
    sheet_wait_s: float
    sheet_s: float
    tokens: int
    outline_tokens: int
    text_matches: bool  # the rebuilt reply has the text the reader got (the floor is of that page)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PageJob:
    """One page and the upstream calls it waits for: the same prompts the llm_worker sends."""

    story_id: str
    page: int
    judge_messages: list[dict[str, str]] | None  # page 0, when the premise is checked first
    outline_messages: list[dict[str, str]] | None  # page 0 only
    sheet_prompt: str | None  # page 0, when the story has a character sheet
    page_messages: list[dict[str, str]]
    task: c.PageTask
    stored_text: str
    has_sheet: bool  # its picture is drawn with the character sheet as reference


def token_index(tokens: list[str], char_index: int) -> int:
    """Index of the token that carries the character at `char_index`."""
    end = 0
    for i, token in enumerate(tokens):
        end += len(token)
        if end > char_index:
            return i
    return len(tokens) - 1


def _value_start(content: str, key: str) -> int:
    """Index of the opening quote of a top-level string field's value."""
    at = content.index(f'"{key}"') + len(key) + 2
    return content.index('"', at)


def reply_marks(content: str) -> tuple[int, int, int]:
    """(tokens, index of the first text token, index of the token closing the illustration)."""
    tokens = tokenize(content)
    data = json.loads(content)
    ill_start = _value_start(content, "illustration")
    ill_close = ill_start + len(json.dumps(data["illustration"], ensure_ascii=False)) - 1
    text_first = _value_start(content, "text") + 1
    return len(tokens), token_index(tokens, text_first), token_index(tokens, ill_close)


def sheet_mark(outline: str) -> int:
    """Index of the outline token after which the llm_worker asks for the character sheet
    (its looks are complete; see OutlineReader), or of the last token."""
    tokens = tokenize(outline)
    reader = OutlineReader()
    for i, token in enumerate(tokens):
        if reader.feed(token) is not None:
            return i
    return len(tokens) - 1


def call_seconds(messages: list[dict[str, str]] | None, latency: Latency) -> float:
    """One whole call to the fake Moonshot: ttft, then its tokens at tps (0 when not made)."""
    if messages is None:
        return 0.0
    return latency.ttft + (len(tokenize(fake_reply(messages))) - 1) / latency.tps


def floor_of(job: PageJob, latency: Latency) -> Floor:
    def stream(index: int) -> float:
        return latency.ttft + index / latency.tps

    content = fake_reply(job.page_messages)
    tokens, text_first, ill_close = reply_marks(content)
    judged = call_seconds(job.judge_messages, latency)
    before = judged + call_seconds(job.outline_messages, latency)
    sheet_done = 0.0
    if job.sheet_prompt is not None and job.outline_messages is not None:
        sheet_done = judged + stream(sheet_mark(fake_reply(job.outline_messages))) + latency.image_seconds
    illustration = before + stream(ill_close)
    text_done = before + stream(tokens - 1)
    image_done = max(illustration, sheet_done) + latency.image_seconds
    outline_tokens = len(tokenize(fake_reply(job.outline_messages))) if job.outline_messages else 0
    return Floor(
        first_delta=before + stream(text_first),
        text_done=text_done,
        image_done=image_done,
        complete=max(text_done, image_done),
        before_s=before,
        illustration_s=stream(ill_close),
        text_s=stream(tokens - 1),
        sheet_wait_s=max(0.0, sheet_done - illustration),
        sheet_s=max(0.0, sheet_done - before),
        tokens=tokens,
        outline_tokens=outline_tokens,
        text_matches=json.loads(content)["text"] == job.stored_text,
    )


def fake_reply(messages: list[dict[str, str]] | None) -> str:
    """What the fake Moonshot answers to these messages (json mode)."""
    assert messages is not None
    return storytext.answer(messages[-1]["content"], json_mode=True)


Row = Mapping[str, Any]


def _json(value: Any) -> Any:
    """A JSON column: text in SQLite, already decoded in PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def _chosen(row: Row) -> str | None:
    choices = _json(row["choices"]) or []
    if row["chosen_action"] is not None:
        return str(row["chosen_action"])
    if row["chosen_choice"] is not None and row["chosen_choice"] < len(choices):
        return str(choices[row["chosen_choice"]])
    return None


def _brief(story: Row) -> c.StoryBrief:
    return c.StoryBrief(
        premise=story["premise"],
        age=story["age"],
        language=story["language"],
        style=story["style"],
        total_pages=story["total_pages"],
    )


def _judge(brief: c.StoryBrief) -> list[dict[str, str]] | None:
    """The premise's suitability check, if this version of the llm_worker makes one."""
    judge = getattr(prompts, "judge_messages", None)
    return None if judge is None else list(judge(brief.premise, age=brief.age, language=brief.language))


def jobs_of(story: Row, rows: Sequence[Row], pages: int) -> list[PageJob]:
    """Rebuild the tasks the gateway sent for a story's first `pages` pages (rows in page order)."""
    if story["outline"] is None:
        return []
    brief = _brief(story)
    outline = c.Outline.model_validate(_json(story["outline"]))
    sheet = story.get("sheet_status") == "ready"
    jobs = []
    for row in rows[:pages]:
        first = row["index"] == 0
        task = c.PageTask(
            story_id=story["id"],
            page=row["index"],
            brief=brief,
            outline=outline,
            story_so_far=[
                c.PageSoFar(index=p["index"], text=p["text"], chosen=_chosen(p))
                for p in rows
                if p["index"] < row["index"]
            ],
            direction=row["direction"],
        )
        outline_task = c.OutlineTask(story_id=story["id"], brief=brief)
        jobs.append(
            PageJob(
                story_id=story["id"],
                page=row["index"],
                judge_messages=_judge(brief) if first else None,
                outline_messages=prompts.outline_messages(outline_task) if first else None,
                sheet_prompt=c.sheet_prompt(outline.characters, outline.style) if first and sheet else None,
                page_messages=prompts.page_messages(task),
                task=task,
                stored_text=row["text"],
                has_sheet=sheet,
            )
        )
    return jobs
