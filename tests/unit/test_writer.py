"""The page and outline readers find what can start early (picture, sheet) and stream the text."""

from __future__ import annotations

import json

import pytest

from services.common import contracts as c
from services.llm_worker.writer import OutlineReader, PageReader

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


def test_the_pictures_description_comes_last_and_is_optional() -> None:
    reader = PageReader()
    reader.feed(json.dumps({**PAGE, "alt": "  图图站在火箭旁边，抬头看月亮。 "}))
    assert reader.finish().alt == "图图站在火箭旁边，抬头看月亮。"
    older = PageReader()
    older.feed(json.dumps(PAGE))
    assert older.finish().alt == ""


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


OUTLINE_JSON = json.dumps(
    {
        "title": "图图去月亮",
        "characters": [
            {"name": "图图", "look": "a small white rabbit with a red scarf"},
            {"name": "Moon", "look": "a round, smiling moon"},
        ],
        "style": "crayon, soft colours",
        "setting": "a quiet meadow",
        "arc": ["图图 looks up", "图图 builds a ladder", "图图 waves from the moon"],
    },
    ensure_ascii=False,
)


def first_sheet(text: str, step: int = 3) -> tuple[int, object]:
    """Where OutlineReader first gives the sheet's looks when fed `text` in pieces."""
    reader = OutlineReader()
    for end in range(step, len(text) + step, step):
        looks = reader.feed(text[end - step : end])
        if looks is not None:
            return end, looks
    return -1, None


def test_the_sheet_is_known_once_characters_and_style_are_complete_before_the_arc() -> None:
    at, looks = first_sheet(OUTLINE_JSON)
    assert looks is not None
    characters, style = looks  # type: ignore[misc]
    assert [ch.name for ch in characters] == ["图图", "Moon"]
    assert style == "crayon, soft colours"
    assert at <= OUTLINE_JSON.index('"setting"') + 12  # long before the arc is written
    assert at > OUTLINE_JSON.index('colours"')  # not before the style string is closed


def test_the_sheet_waits_for_the_last_character_when_the_style_comes_first() -> None:
    data = json.loads(OUTLINE_JSON)
    order = ("title", "style", "characters", "arc")
    reordered = json.dumps({key: data[key] for key in order}, ensure_ascii=False)
    at, looks = first_sheet(reordered)
    assert looks is not None
    assert len(looks[0]) == 2  # type: ignore[index]
    assert at > reordered.index('"arc"')


def test_an_outline_without_style_gives_no_early_sheet() -> None:
    data = json.loads(OUTLINE_JSON)
    del data["style"]
    assert first_sheet(json.dumps(data, ensure_ascii=False)) == (-1, None)


def test_a_sheet_key_names_the_looks_and_the_style() -> None:
    rabbit = [c.Character(name="图图", look="a small white rabbit")]
    assert c.sheet_key(rabbit, "crayon") == c.sheet_key(list(rabbit), "crayon")
    assert c.sheet_key(rabbit, "crayon") != c.sheet_key(rabbit, "watercolour")
    other = [c.Character(name="图图", look="a small grey rabbit")]
    assert c.sheet_key(rabbit, "crayon") != c.sheet_key(other, "crayon")
