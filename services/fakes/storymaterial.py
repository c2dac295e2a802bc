"""The fake Moonshot's story material: animals, places, small adventures and endings.

The words live in `data/storytext.json`, one entry per animal, place or beat with
its Chinese and English side by side, so a new adventure or a new language line is
added as data, not as code; this module only gives them types. The writer
(storytext.py) picks from these with a seeded random, so the same request always
gets the same story.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Bilingual:
    zh: str
    en: str


@dataclass(frozen=True)
class Species(Bilingual):
    measure: str  # 一只 / 一头 / 一条, for zh (as the story calls it: 小刺猬)
    look: str  # English, for the illustrator
    zh_words: tuple[str, ...]
    en_words: tuple[str, ...]


@dataclass(frozen=True)
class Place(Bilingual):
    zh_in: str  # 在……里 / 在……上, as a sentence uses it
    zh_words: tuple[str, ...]
    en_words: tuple[str, ...]


@dataclass(frozen=True)
class Option(Bilingual):
    """A choice at the end of a page and how the next page begins if it is taken."""

    zh_after: str
    en_after: str


@dataclass(frozen=True)
class Ending(Bilingual):
    picture: str


@dataclass(frozen=True)
class Beat(Ending):
    """One small adventure: a page poses it, the reader picks how it goes.

    In its texts {h}/{f} are the hero's and friend's names in Chinese text, {H}/{F}
    the same in English text.
    """

    arc_zh: str
    arc_en: str
    options: tuple[Option, ...]


def _load() -> dict[str, Any]:
    text = resources.files("services.fakes").joinpath("data/storytext.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _species(row: dict[str, Any]) -> Species:
    return Species(**{**row, "zh_words": tuple(row["zh_words"]), "en_words": tuple(row["en_words"])})


def _place(row: dict[str, Any]) -> Place:
    return Place(**{**row, "zh_words": tuple(row["zh_words"]), "en_words": tuple(row["en_words"])})


def _beat(row: dict[str, Any]) -> Beat:
    return Beat(**{**row, "options": tuple(Option(**o) for o in row["options"])})


_DATA = _load()

SPECIES: tuple[Species, ...] = tuple(_species(row) for row in _DATA["species"])
# Friends are drawn from the gentler, easy-to-draw half of the cast.
FRIENDS: tuple[Species, ...] = tuple(s for s in SPECIES if s.en in set(_DATA["friends"]))
NAMES_ZH: tuple[str, ...] = tuple(_DATA["names"]["zh"])
NAMES_EN: tuple[str, ...] = tuple(_DATA["names"]["en"])
PLACES: tuple[Place, ...] = tuple(_place(row) for row in _DATA["places"])
BEATS: tuple[Beat, ...] = tuple(_beat(row) for row in _DATA["beats"])
ENDINGS: tuple[Ending, ...] = tuple(Ending(**row) for row in _DATA["endings"])
FEELINGS_ZH: tuple[str, ...] = tuple(_DATA["feelings"]["zh"])
FEELINGS_EN: tuple[str, ...] = tuple(_DATA["feelings"]["en"])
# The illustrator reads English best, so a Chinese style name is translated.
STYLE_WORDS: dict[str, str] = dict(_DATA["style_words"])
# What this stand-in "model" judges unsuitable: a few ideas a word list would miss.
UNSUITABLE_IDEAS: tuple[str, ...] = tuple(_DATA["unsuitable_ideas"])
