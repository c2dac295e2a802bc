"""The page reader finds the illustration before the text ends and streams the text."""

from __future__ import annotations

import json

import pytest

from services.llm_worker.writer import PageReader

PAGE = {
    "illustration": 'Tutu the rabbit looks up at a huge "silver" moon',
    "text": '小兔子图图抬头看着月亮。\n她想："我要去那里！"',
    "choices": ["造一艘火箭", "问问猫头鹰"],
}


def feed_all(reader: PageReader, raw: str, size: int) -> tuple[list[str], int | None, str]:
    deltas, seen_at, illustration = [], None, ""
    for i in range(0, len(raw), size):
        progress = reader.feed(raw[i : i + size])
        if progress.illustration:
            assert seen_at is None, "illustration reported twice"
            seen_at, illustration = i + size, progress.illustration
        if progress.new_text:
            deltas.append(progress.new_text)
    return deltas, seen_at, illustration


@pytest.mark.parametrize("size", [1, 3, 7, 50])
def test_illustration_arrives_before_the_text_and_text_streams(size: int) -> None:
    raw = json.dumps(PAGE, ensure_ascii=False)
    reader = PageReader()
    deltas, seen_at, illustration = feed_all(reader, raw, size)
    assert illustration == PAGE["illustration"]
    assert seen_at is not None and seen_at < raw.index('"text"') + 10 + size
    assert "".join(deltas) == PAGE["text"]
    if size < 10:
        assert len(deltas) > 3  # streamed, not delivered at the end
    draft = reader.finish()
    assert draft.text == PAGE["text"] and draft.choices == PAGE["choices"]


def test_markdown_fence_around_the_object_is_tolerated() -> None:
    reader = PageReader()
    reader.feed("```json\n" + json.dumps(PAGE) + "\n```")
    assert reader.finish().illustration.startswith("Tutu")


def test_missing_illustration_falls_back_to_the_text() -> None:
    reader = PageReader()
    reader.feed(json.dumps({"text": "Once upon a time.", "choices": []}))
    assert reader.finish().illustration == "Once upon a time."


@pytest.mark.parametrize(
    "raw, why",
    [
        ('{"illustration": "x", "text": "unterminated', "not valid JSON"),
        ('{"illustration": "x", "text": ""}', "no text"),
        ("[1, 2]", "not valid JSON"),
        ('{"illustration": "x", "text": "t", "choices": "a"}', "not a list"),
    ],
)
def test_unusable_pages_are_refused_with_a_reason(raw: str, why: str) -> None:
    reader = PageReader()
    reader.feed(raw)
    with pytest.raises(ValueError, match=why):
        reader.finish()
