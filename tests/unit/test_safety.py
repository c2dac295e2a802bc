"""Hostile and borderline ideas, in Chinese and English, by the reader's age."""

from __future__ import annotations

import pytest

from services.common.safety import check, kind_refusal

HOSTILE = [
    "a boy who wants to kill his teacher",
    "A story with a GUN and lots of blood",
    "ＫＩＬＬ the dragon",  # full-width letters
    "一个小女孩杀死了怪兽",
    "一只 杀 死 怪兽的猫",  # spaced out
    "小猫去赌博",
    "a naked princess",
    "关于毒品的故事",
    "the bear who wanted suicide",
    "the wolf murders the lamb",  # inflections
    "he killed the bird",
    "k i l l s the princess",  # spelled out
    "k.i.l.l the dragon",
    "k\u200bill the dragon",  # a zero-width space inside
    "K\u0456ll the dragon",  # Cyrillic і
    "a b\u03bfmb in the school",  # Greek ο
    "k1ll the cat",
    "小兔子杀\u200b人了",
    "杀-人-魔",
]
FINE = [
    "一只想去月亮上的小兔子",
    "A little robot who wants to learn to dance",
    "Skills of killer whales",  # whole words only
    "a shooting star",
    "小熊过生日，朋友们送来蛋糕",
    "熊猫想学游泳",
    # Listed words in their everyday, harmless sense.
    "一只杀人鲸宝宝学游泳",
    "小兔子摔倒了，膝盖流血了，但是它很勇敢",
    "A water gun fight with grandpa",
    "a baby killer whale learns to swim",
    "一只大麻雀在屋顶上唱歌",
    "a bullet train ride to the sea",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_ideas_are_refused_at_every_age(text: str) -> None:
    for age in (3, 7, 12):
        assert not check(text, age=age).ok, (text, age)


@pytest.mark.parametrize("text", FINE)
def test_ordinary_ideas_pass(text: str) -> None:
    assert check(text, age=3).ok


@pytest.mark.parametrize(
    "text, refused_at, fine_at",
    [("a friendly ghost", 4, 6), ("友好的鬼魂", 4, 6), ("a zombie party", 5, 8), ("the dead tree", 5, 8)],
)
def test_borderline_ideas_depend_on_age(text: str, refused_at: int, fine_at: int) -> None:
    assert not check(text, age=refused_at).ok
    assert check(text, age=fine_at).ok


def test_refusals_are_kind_and_suggest_another_idea() -> None:
    zh, en = kind_refusal("zh"), kind_refusal("en")
    assert "换一个试试吧" in zh and "「" in zh
    assert "How about" in en and "“" in en


def test_a_refused_typed_idea_suggests_one_of_the_pages_own_choices() -> None:
    choices = ["造一艘火箭", "问问猫头鹰"]
    zh = kind_refusal("zh", choices=choices)
    assert any(f"「{c}」" in zh for c in choices) and "新点子" in zh
    en = kind_refusal("en", choices=["build a rocket"])
    assert "“build a rocket”" in en and "story for children" not in en
