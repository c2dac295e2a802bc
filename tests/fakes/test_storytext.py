"""The fake writer's stories over many premises: right shape, right length, real endings."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from services.fakes import storytext

PREMISES = {
    "zh": [
        "一只怕黑的小刺猬想去看星星",
        "熊猫宝宝第一次去海边，想交一个新朋友，可是它有点害羞，不知道该怎么开口",
        "小机器人在雪地里找丢失的齿轮",
        "一个关于分享的故事",
        "",
    ],
    "en": [
        "A shy little dragon who wants to learn to fly",
        "Two mice build a boat for a trip across the garden pond",
        "a story about sharing",
        "",
    ],
}
CJK = re.compile(r"[\u4e00-\u9fff]")


def ctx(language: str, premise: str, **extra: Any) -> dict[str, Any]:
    return {"language": language, "age": 6, "premise": premise, "style": "水彩", "total_pages": 6, **extra}


@pytest.mark.parametrize("language", ["zh", "en"])
def test_whole_stories(language: str) -> None:
    for premise in PREMISES[language]:
        outline = storytext.outline(ctx(language, premise, task="outline"))
        assert len(outline["arc"]) == 6 and len(outline["characters"]) == 2
        hero = outline["characters"][0]["name"]
        choice = None
        for index in range(6):
            page = storytext.page(
                ctx(
                    language,
                    premise,
                    task="page",
                    page=index,
                    page_number=index + 1,
                    is_last=index == 5,
                    outline=outline,
                    story_so_far=[],
                    reader_choice=choice,
                )
            )
            assert list(page) == ["illustration", "text", "choices", "alt"]
            assert hero in page["illustration"]
            if language == "zh":
                assert 40 <= len(page["text"]) <= 120, page["text"]
                assert CJK.search(page["text"])
            else:
                assert not CJK.search(page["text"]) and 20 <= len(page["text"].split()) <= 90
            if index == 5:
                assert page["choices"] == []
            else:
                assert 2 <= len(page["choices"]) <= 3
                choice = page["choices"][-1]


def test_every_choice_is_followed_in_both_languages() -> None:
    outline = {"characters": [{"name": "Aa", "look": "a fox"}, {"name": "Bb", "look": "a frog"}]}
    names = {"h": "Aa", "f": "Bb", "H": "Aa", "F": "Bb"}
    for beat in storytext.BEATS:
        for option in beat.options:
            for language, said, after in (
                ("zh", option.zh, option.zh_after),
                ("en", option.en, option.en_after),
            ):
                page = storytext.page(ctx(language, "x", page=2, outline=outline, reader_choice=said))
                assert page["text"].startswith(after.format(**names))


def test_long_typed_actions_are_quoted_not_swallowed() -> None:
    action = "让小刺猬和萤火虫一起唱一首很长很长很长很长很长很长很长很长很长很长的歌"
    page = storytext.page(ctx("zh", "一只小刺猬", page=1, reader_choice=action))
    assert action[:10] in page["text"] and len(page["text"]) <= 120


def test_answer_without_context() -> None:
    assert storytext.answer("hello", json_mode=True) == "{}"
    assert "Moonshot" in storytext.answer("hello", json_mode=False)
    marker = storytext.CONTEXT_MARKER
    reply = storytext.answer(f"go\n{marker}\n" + json.dumps(ctx("en", "x", task="page")), json_mode=True)
    assert json.loads(reply)["text"]


def test_a_foreign_outline_is_respected() -> None:
    outline = {
        "title": "T",
        "characters": [{"name": "Bo", "look": "a tiny owl in a cape"}],
        "style": "s",
        "setting": "a lighthouse on a cliff",
        "arc": ["?"],
    }
    page = storytext.page(ctx("en", "x", page=0, outline=outline))
    assert "owl called Bo" in page["text"] and "a lighthouse on a cliff" in page["text"]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_later_page_without_a_reader_choice_names_its_characters(language: str) -> None:
    # A typed idea set aside by the safety check reaches the model as no choice at all.
    book = storytext.outline(ctx(language, "小熊去野餐" if language == "zh" else "a bear's picnic"))
    text = storytext.page(ctx(language, "x", page=2, outline=book, reader_choice=None))["text"]
    assert "{" not in text and book["characters"][0]["name"] in text
