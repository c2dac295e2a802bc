"""Is this fit for a child of this age? The word list: fast, certain, and the same everywhere.

The list (data/unsuitable.txt) is checked at the door (the gateway refuses a premise
or typed idea with a kind sentence), while a page is streamed (an unsuitable page is
rewritten before the reader sees the word), and on every picture prompt. The model's
own judgement (a cheap classification call in the llm_worker) handles what a list
cannot.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "unsuitable.txt"


@dataclass(frozen=True)
class Term:
    category: str
    min_age: int
    text: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    category: str = ""
    term: str = ""


@cache
def _terms() -> tuple[list[Term], re.Pattern[str] | None]:
    terms = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        category, age, text = (part.strip() for part in line.split("|", 2))
        terms.append(Term(category, int(age), text.lower()))
    latin = [t.text for t in terms if t.text.isascii()]
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, latin)) + r")\b") if latin else None
    return terms, pattern


def _normalise(text: str) -> str:
    # Full-width letters, odd spacing and case must not slip past the list.
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", text)


def check(text: str, *, age: int) -> Verdict:
    terms, pattern = _terms()
    norm = _normalise(text)
    squeezed = norm.replace(" ", "")
    by_text = {t.text: t for t in terms}
    if pattern is not None:
        for match in pattern.finditer(norm):
            term = by_text[match.group(1)]
            if age < term.min_age:
                return Verdict(False, term.category, term.text)
    for term in terms:
        if not term.text.isascii() and term.text in squeezed and age < term.min_age:
            return Verdict(False, term.category, term.text)
    return Verdict(True)


IDEAS = {
    "zh": [
        "一只想学飞的小企鹅",
        "会唱歌的小雨伞",
        "森林里的音乐会",
        "想去月亮上的小兔子",
        "迷路的小星星找回家",
    ],
    "en": [
        "a little penguin who wants to fly",
        "an umbrella that sings in the rain",
        "a concert in the forest",
        "a bunny who wants to visit the moon",
        "a lost little star finding its way home",
    ],
}


def kind_refusal(language: str, *, choices: Sequence[str] = ()) -> str:
    """What a child (or parent) reads instead of a bare error: and another idea to try.

    `choices`: for a typed idea on a page, the page's own choices, so the suggestion
    continues this story instead of proposing a new one."""
    if choices:
        choice = random.choice(list(choices))
        if language == "zh":
            return f"这个想法不太适合这个故事。试试「{choice}」，或者再想一个新点子吧！"
        return f"That idea doesn't fit this story. How about “{choice}”, or another idea of your own?"
    idea = random.choice(IDEAS["zh" if language == "zh" else "en"])
    if language == "zh":
        return f"这个想法不太适合写成给小朋友的故事。换一个试试吧，比如「{idea}」？"
    return f"That idea doesn't fit a story for children. How about trying “{idea}”?"


def set_aside(language: str) -> str:
    """Said on a page whose reader's typed idea was gently left out."""
    if language == "zh":
        return "刚才的想法不太适合这个故事，所以故事换了一个温柔的方向。你可以再想一个新点子！"
    return "That idea didn't quite fit this story, so it took a gentler turn. Try another idea next!"
