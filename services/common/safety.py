"""Is this fit for a child of this age? The word list: fast, certain, and the same everywhere.

The list (data/unsuitable.txt) is checked at the door (the gateway refuses a premise
or typed idea with a kind sentence), on everything the model writes that reaches a
reader or a picture prompt (the outline's title, names, looks, setting and arc; each
page while it streams, its choices and its scene; the character sheet's prompt), so
an unsuitable piece is written again before the reader sees it. Text is normalised
first, so spacing, invisible characters and look-alike letters do not slip past it,
and harmless phrases with a listed word in them (data/harmless.txt: 杀人鲸, "water
gun") are not refused. The model's own judgement (a cheap classification call in the
llm_worker) handles what a list cannot.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from confusable_homoglyphs import confusables

DATA = Path(__file__).parent / "data"


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


# ----------------------------------------------------------------- normalising


# Invisible characters that split a word without showing: zero-width spaces and joiners,
# soft hyphens, word joiners, bidi marks, variation selectors (all format characters).
def _visible(ch: str) -> bool:
    return unicodedata.category(ch) not in ("Cf", "Mn", "Me") and not 0xFE00 <= ord(ch) <= 0xFE0F


@cache
def _latin(ch: str) -> str:
    """The Latin letter a Cyrillic, Greek or other letter is drawn like ("і" → "i")."""
    if ch.isascii() or not ch.isalpha() or not 0x250 <= ord(ch) < 0x2E80:
        return ch
    found = confusables.is_confusable(ch, greedy=True, preferred_aliases=["latin"])
    for item in found or ():
        for glyph in item["homoglyphs"]:
            if glyph["c"].isascii() and glyph["c"].isalpha():
                return str(glyph["c"]).lower()
    return ch


# A word spelled out letter by letter, one separator throughout: "k i l l", "k.i.l.l",
# "k-i-l-l-s" (so "a b.l.o.o.d.y story" keeps its "a").
_SPELLED = re.compile(
    r"(?<![a-z0-9])[a-z0-9](?P<sep>[\s.\-_*·,|/]+)[a-z0-9](?![a-z0-9])(?:(?P=sep)[a-z0-9](?![a-z0-9])){1,}"
)


def _join(match: re.Match[str]) -> str:
    letters = re.sub(r"[^a-z0-9]", "", match.group(0))
    # "a k i l l e r": the article stays a word of its own.
    if letters[0] in "ai" and match.group("sep").isspace() and len(letters) > 3:
        return letters[0] + " " + letters[1:]
    return letters


_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
# Digits standing for letters only inside words that also have letters ("k1ll", "s3x").
_MIXED = re.compile(r"(?=[a-z0-9@$]*[a-z])(?=[a-z0-9@$]*[0-9@$])[a-z0-9@$]+")
_GAPS = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """What the list is matched against: one spelling for every way of writing a word."""
    text = unicodedata.normalize("NFKC", text)
    # Accents and invisible characters go: "kíll", "k\u200bill".
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if _visible(ch))
    text = unicodedata.normalize("NFC", text)
    text = "".join(_latin(ch) for ch in text).casefold()
    text = _SPELLED.sub(_join, text)
    return re.sub(r"\s+", " ", text).strip()


def _unleet(text: str) -> str:
    return _MIXED.sub(lambda m: m.group(0).translate(_LEET), text)


# ----------------------------------------------------------------- the list


def _inflections(word: str) -> set[str]:
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing", word + "er", word + "ers"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing"}
    if word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    if len(word) >= 3 and word[-1] not in "aeiouwxy" and word[-2] in "aeiou" and word[-3] not in "aeiou":
        forms |= {word + word[-1] + suffix for suffix in ("ed", "ing", "er", "ers")}
    return forms


def _phrase_forms(term: str) -> set[str]:
    words = term.split(" ")
    if len(words) == 1:
        return _inflections(term)
    first = {" ".join([f, *words[1:]]) for f in _inflections(words[0])}
    last = {" ".join([*words[:-1], f]) for f in _inflections(words[-1])}
    return first | last


@dataclass(frozen=True)
class _List:
    terms: dict[str, Term]  # every English form and every Chinese term → its term
    latin: re.Pattern[str] | None
    cjk: tuple[Term, ...]
    harmless_latin: re.Pattern[str] | None
    harmless_cjk: tuple[str, ...]


def _read(name: str) -> list[str]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _words(forms: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(set(forms), key=len, reverse=True)
    if not ordered:
        return None
    return re.compile(r"(?<![a-z0-9])(" + "|".join(map(re.escape, ordered)) + r")(?![a-z0-9])")


@cache
def _list() -> _List:
    terms: dict[str, Term] = {}
    cjk = []
    for line in _read("unsuitable.txt"):
        category, age, text = (part.strip() for part in line.split("|", 2))
        term = Term(category, int(age), normalise(text))
        if term.text.isascii():
            for form in _phrase_forms(term.text):
                # A form shared by two terms ("die"/"dying") keeps the stricter one.
                if form not in terms or terms[form].min_age < term.min_age:
                    terms[form] = term
        else:
            cjk.append(Term(term.category, term.min_age, _GAPS.sub("", term.text)))
    harmless = [normalise(p) for p in _read("harmless.txt")]
    return _List(
        terms=terms,
        latin=_words(terms),
        cjk=tuple(cjk),
        harmless_latin=_words(p for p in harmless if p.isascii()),
        harmless_cjk=tuple(sorted((_GAPS.sub("", p) for p in harmless if not p.isascii()), key=len)[::-1]),
    )


def check(text: str, *, age: int) -> Verdict:
    """Whether `text` is free of every listed term not yet fine for a reader of `age`."""
    lst = _list()
    norm = normalise(text)
    if lst.harmless_latin is not None:
        norm = lst.harmless_latin.sub(" ", norm)
    if lst.latin is not None:
        for variant in {norm, _unleet(norm)}:
            for match in lst.latin.finditer(variant):
                term = lst.terms[match.group(1)]
                if age < term.min_age:
                    return Verdict(False, term.category, term.text)
    # Chinese has no spaces between words: match across any gap a writer may slip in.
    dense = _GAPS.sub("", norm)
    for phrase in lst.harmless_cjk:
        dense = dense.replace(phrase, "|")
    for term in lst.cjk:
        if term.text in dense and age < term.min_age:
            return Verdict(False, term.category, term.text)
    return Verdict(True)


def check_all(texts: Iterable[str], *, age: int) -> Verdict:
    """The first unsuitable text among `texts` decides; all fine, fine."""
    for text in texts:
        verdict = check(text, age=age)
        if not verdict.ok:
            return verdict
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
