"""Everything the model writes that reaches a reader or a picture prompt is checked.

The writer runs as in production; only the model's answer is given (as streamed
pieces) and what it would publish is kept instead of sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from services.common import contracts as c
from services.common.topology import Topology
from services.llm_worker.config import LlmSettings
from services.llm_worker.moonshot import LlmError
from services.llm_worker.story import Writer

BRIEF = c.StoryBrief(premise="a bunny and a dragon", age=6, language="en", style="watercolor", total_pages=4)
OUTLINE = {
    "title": "The Bunny and the Dragon",
    "characters": [{"name": "Pip", "look": "a small white bunny with a blue scarf"}],
    "style": "watercolor",
    "setting": "a sunny meadow",
    "arc": ["Pip meets a dragon", "they fly", "they share a picnic", "home at sunset"],
}
PAGE = {
    "illustration": "Pip and the dragon on a hill",
    "text": "Pip hopped up the hill and waved at the dragon.",
    "choices": ["fly with the dragon", "share a carrot"],
}


class Scripted(Writer):
    """A writer whose model says `answer`; judge calls say "suitable"."""

    def __init__(self, answer: dict[str, Any]) -> None:
        settings = LlmSettings.model_construct(moonshot_api_key=SecretStr("sk-unit-test-000000"))
        super().__init__(settings=settings, broker=None, link=None, topology=Topology("unit"))  # type: ignore[arg-type]
        self.answer = json.dumps(answer)
        self.results: list[c.Contract] = []
        self.pictures: list[c.ImageTask] = []

    async def _stream(
        self, messages: list[dict[str, str]], usage: dict[str, int], *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        text = '{"suitable": true, "reason": "fine"}' if max_tokens == 120 else self.answer
        for i in range(0, len(text), 7):
            yield text[i : i + 7]

    async def _result(self, result: c.Contract, story_id: str, **_: Any) -> None:
        self.results.append(result)

    async def _picture(self, task: c.ImageTask) -> None:
        self.pictures.append(task)

    async def _live(self, message: c.TextDelta | c.TextReset) -> None:
        pass


def outline_with(**changes: Any) -> dict[str, Any]:
    return {**OUTLINE, **changes}


@pytest.mark.parametrize(
    "outline",
    [
        outline_with(title="How to kill a dragon with a gun"),
        outline_with(characters=[{"name": "Pip", "look": "a rabbit covered in blood"}]),
        outline_with(characters=[{"name": "Murderer Max", "look": "a grey wolf"}]),
        outline_with(setting="a haunted graveyard full of corpses"),
        outline_with(arc=["Pip meets a dragon", "the dragon is stabbed", "they eat", "home"]),
    ],
)
async def test_an_unfit_outline_is_written_again_and_never_published(outline: dict[str, Any]) -> None:
    writer = Scripted(outline)
    task = c.OutlineTask(story_id="s1", brief=BRIEF)
    with pytest.raises(LlmError) as refused:
        await writer.write_outline(task)
    assert refused.value.code == "llm_unsafe_output" and refused.value.retryable
    assert not any(isinstance(r, c.OutlineReady) for r in writer.results)
    assert all("blood" not in p.prompt for p in writer.pictures)


async def test_a_fit_outline_is_published_with_its_sheet() -> None:
    writer = Scripted(OUTLINE)
    await writer.write_outline(c.OutlineTask(story_id="s1", brief=BRIEF))
    assert any(isinstance(r, c.OutlineReady) for r in writer.results)
    assert [p.kind for p in writer.pictures] == ["sheet"]


def page_task() -> c.PageTask:
    return c.PageTask(story_id="s1", page=1, brief=BRIEF, outline=c.Outline.model_validate(OUTLINE))


async def test_an_unfit_choice_makes_the_page_written_again() -> None:
    writer = Scripted({**PAGE, "choices": ["shoot the gun at the bear", "share a carrot"]})
    with pytest.raises(LlmError) as refused:
        await writer.write_page(page_task())
    assert refused.value.code == "llm_unsafe_output"
    assert not any(isinstance(r, c.PageTextDone) for r in writer.results)


async def test_an_unfit_scene_is_never_a_picture_prompt_nor_kept_for_redraws() -> None:
    writer = Scripted({**PAGE, "illustration": "a rabbit covered in blood"})
    await writer.write_page(page_task())
    done = [r for r in writer.results if isinstance(r, c.PageTextDone)]
    assert done and "blood" not in done[0].image_prompt
    assert writer.pictures and all("blood" not in p.prompt for p in writer.pictures)
