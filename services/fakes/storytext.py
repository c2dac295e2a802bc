"""The fake Moonshot's writer: small, real stories built from the story context.

The llm_worker's prompts put the facts after a `STORY_CONTEXT_JSON:` line. This
module reads them and writes what a good model would: an outline, or one page as
`{"illustration", "text", "choices", "alt"}` in that order, in Chinese or English. The
story follows the premise (the hero's species and the place come from it), the
outline's character names, the page number and the reader's choice, and ends
properly on the last page. Everything is seeded from a hash of the input, so the
same request always gets the same answer, which keeps tests and demos repeatable.
The words it picks from (animals, places, adventures, endings) are data, in
storymaterial.py and data/storytext.json.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from services.fakes.storymaterial import (
    BEATS,
    ENDINGS,
    FEELINGS_EN,
    FEELINGS_ZH,
    FRIENDS,
    NAMES_EN,
    NAMES_ZH,
    PLACES,
    SPECIES,
    STYLE_WORDS,
    UNSUITABLE_IDEAS,
    Beat,
    Option,
    Place,
    Species,
)

# Must equal services.llm_worker.prompts.CONTEXT_MARKER (a test checks it). It is
# not imported: the fake stands in for a remote service and should not need the
# client's code to run.
CONTEXT_MARKER = "STORY_CONTEXT_JSON:"

ZH_MIN, ZH_MAX = 40, 120


def answer(user_message: str, *, json_mode: bool) -> str:
    """The assistant's reply to the last user message."""
    context = read_context(user_message)
    if context is not None:
        if context.get("task") == "outline":
            return json.dumps(outline(context), ensure_ascii=False)
        if context.get("task") == "page":
            return json.dumps(page(context), ensure_ascii=False)
        if context.get("task") == "classify":
            return json.dumps(judge(context), ensure_ascii=False)
    if json_mode:
        return "{}"
    if re.search(r"[\u4e00-\u9fff]", user_message):
        return "你好！我是离线的 Moonshot 替身，可以帮你写故事大纲和故事的每一页。"
    return (
        "Hello! I am the offline stand-in for Moonshot. "
        "Ask me for a story outline or a page and I will write one."
    )


def read_context(user_message: str) -> dict[str, Any] | None:
    _, marker, rest = user_message.partition(CONTEXT_MARKER)
    if not marker:
        return None
    try:
        value = json.loads(rest.strip())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# ------------------------------------------------------------------------ outline


def outline(ctx: dict[str, Any]) -> dict[str, Any]:
    lang = _language(ctx)
    premise = str(ctx.get("premise") or "")
    total = _total_pages(ctx)
    hero, friend = _cast(premise, lang)
    named = ctx.get("hero_name")
    if isinstance(named, str) and named.strip():  # the child named their own hero
        hero = Person(named.strip()[:30], hero.species)
    place = _place_from_premise(premise)
    names = {"h": hero.name, "f": friend.name, "H": hero.name, "F": friend.name}
    rng = _rng("title", premise, lang)
    if lang == "zh":
        title = rng.choice(("{h}的奇妙旅程", "{h}和{f}", "勇敢的{h}", "{h}去冒险")).format(**names)
        start, end = "{h}和{f}出发，", "{h}和{f}开开心心回到家，故事温暖地结束"
    else:
        title = rng.choice(
            ("{H}'s Wonderful Journey", "{H} and {F}", "Brave Little {H}", "{H} Sets Off")
        ).format(**names)
        start, end = "{H} and {F} set off and ", "{H} and {F} come home happy: a warm ending"
    beats = _beat_order(premise, lang)
    arc = [_arc_of(beats[i % len(beats)], lang) for i in range(total - 1)]
    if arc:
        arc[0] = start.format(**names) + arc[0]
    arc.append(end.format(**names))
    return {
        "title": title,
        "characters": [
            {"name": hero.name, "look": hero.species.look},
            {"name": friend.name, "look": friend.species.look},
        ],
        "style": _style_en(str(ctx.get("style") or "")),
        "setting": place.zh if lang == "zh" else place.en,
        "arc": arc,
    }


@dataclass(frozen=True)
class Person:
    name: str
    species: Species


def _cast(premise: str, lang: str) -> tuple[Person, Person]:
    rng = _rng("cast", premise, lang)
    species = _species_in(premise) or rng.choice(SPECIES)
    friend_species = rng.choice([s for s in FRIENDS if s is not species])
    names = NAMES_ZH if lang == "zh" else NAMES_EN
    hero_name, friend_name = rng.sample(names, 2)
    return Person(hero_name, species), Person(friend_name, friend_species)


def _species_in(text: str) -> Species | None:
    """The first animal the text names; longest word first, so 熊猫 is not 熊."""
    found: list[tuple[int, int, Species]] = []
    lowered = text.lower()
    for sp in SPECIES:
        for word in sp.zh_words:
            at = text.find(word)
            if at >= 0:
                found.append((at, -len(word), sp))
        for word in sp.en_words:
            m = re.search(rf"\b{re.escape(word)}s?\b", lowered)
            if m:
                found.append((m.start(), -len(word), sp))
    if not found:
        return None
    return min(found, key=lambda f: (f[0], f[1]))[2]


def _place_from_premise(premise: str) -> Place:
    lowered = premise.lower()
    for place in PLACES:
        if any(w in premise for w in place.zh_words) or any(
            re.search(rf"\b{re.escape(w)}\b", lowered) for w in place.en_words
        ):
            return place
    return _rng("place", premise).choice(PLACES)


def _style_en(style: str) -> str:
    # The illustrator reads English best (the prompt says so), so a Chinese style
    # name is translated, or replaced by a safe default when it is not known.
    if re.search(r"[^\x00-\x7f]", style):
        known = [en for zh, en in STYLE_WORDS.items() if zh in style]
        style = " and ".join(dict.fromkeys(known)) or "gentle watercolour"
    style = style.strip() or "gentle watercolour"
    return f"{style}, soft warm colours, rounded friendly shapes, picture-book look"


# ------------------------------------------------------------------------ page


def page(ctx: dict[str, Any]) -> dict[str, Any]:
    lang = _language(ctx)
    premise = str(ctx.get("premise") or "")
    total = _total_pages(ctx)
    index = _page_index(ctx)
    is_last = bool(ctx.get("is_last", index >= total - 1))
    age = _int(ctx.get("age"), 6)
    choice = ctx.get("reader_choice")
    choice = choice.strip() if isinstance(choice, str) and choice.strip() else None
    raw_outline = ctx.get("outline")
    book: dict[str, Any] = raw_outline if isinstance(raw_outline, dict) else {}

    hero, friend = _people(book, premise, lang)
    rng = _rng("page", premise, lang, str(index), choice or "", hero.name)
    names = {"h": hero.name, "f": friend.name, "H": hero.name, "F": friend.name}
    place_in = _place_for(book, premise, lang)

    # (sentence, may it be dropped to keep a Chinese page within 40-120 characters)
    if index == 0:
        parts = _opening(hero, friend, premise, place_in, lang)
    else:
        parts = [(_follow(choice, names, lang), False)]

    if is_last:
        ending = rng.choice(ENDINGS)
        parts.append(((ending.zh if lang == "zh" else ending.en).format(**names), False))
        illustration = ending.picture.format(**names)
        scene = ending.zh.format(**names)
        choices: list[str] = []
    else:
        beat = _beat_for(book, premise, lang, index)
        parts.append(((beat.zh if lang == "zh" else beat.en).format(**names), False))
        if age > 4:
            feelings = FEELINGS_ZH if lang == "zh" else FEELINGS_EN
            parts.append((rng.choice(feelings).format(**names), True))
        illustration = beat.picture.format(**names)
        scene = beat.zh.format(**names)
        options = list(beat.options)
        rng.shuffle(options)
        count = 3 if rng.random() < 0.5 else 2
        choices = [o.zh if lang == "zh" else o.en for o in options[:count]]

    return {
        "illustration": illustration,
        "text": _compose(parts, lang),
        "choices": choices,
        "alt": _alt(illustration, scene, lang),
    }


def _opening(hero: Person, friend: Person, premise: str, place_in: str, lang: str) -> list[tuple[str, bool]]:
    """The first page's first sentences: who, where, how it began, who comes along."""
    parts = [(_intro(hero, place_in, lang), False)]
    short = _premise_short(premise, lang)
    if short:
        opening = f"故事是这样开始的：{short}。" if lang == "zh" else f"Here is how it began: {short}."
        parts.append((opening, True))
    if lang == "zh":
        parts.append((f"这天，{hero.name}和好朋友{friend.species.zh}{friend.name}一起出发了。", False))
    else:
        companion = (
            f"One morning {hero.name} set off with a good friend, {friend.name} the {friend.species.en}."
        )
        parts.append((companion, False))
    return parts


def _alt(illustration: str, scene_zh: str, lang: str) -> str:
    """What the picture shows, in the story's language, as the model writes it."""
    if lang == "en":
        return illustration.rstrip(".") + "."
    first = scene_zh.split("。")[0].strip("“”（完）")
    return f"图里：{first}。"


def _people(book: dict[str, Any], premise: str, lang: str) -> tuple[Person, Person]:
    """Hero and friend from the outline when it names them, else from the premise."""
    hero, friend = _cast(premise, lang)
    named: list[Person] = []
    for c in book.get("characters") or []:
        if isinstance(c, dict) and isinstance(c.get("name"), str) and c["name"].strip():
            look = str(c.get("look") or "")
            species = _species_in(look) or _species_in(c["name"]) or hero.species
            named.append(Person(c["name"].strip(), species))
    if named:
        hero = named[0]
    if len(named) > 1:
        friend = named[1]
    elif friend.name == hero.name:
        names = NAMES_ZH if lang == "zh" else NAMES_EN
        friend = Person(next(n for n in names if n != hero.name), friend.species)
    return hero, friend


def _place_for(book: dict[str, Any], premise: str, lang: str) -> str:
    """Where the story happens, as the first page's sentence needs it."""
    setting = str(book.get("setting") or "").strip()
    for place in PLACES:
        if setting in (place.zh, place.en):
            return place.zh_in if lang == "zh" else place.en
    # A setting written by someone else is used when it is short enough to sit in a
    # sentence; a long description would swamp a 40-120 character page.
    if setting and len(setting) <= (14 if lang == "zh" else 60):
        return f"在{setting}里" if lang == "zh" else setting
    place = _place_from_premise(premise)
    return place.zh_in if lang == "zh" else place.en


def _intro(hero: Person, place_in: str, lang: str) -> str:
    if lang == "zh":
        return f"从前，{place_in}，住着一{hero.species.measure}{hero.species.zh}，名叫{hero.name}。"
    return f"Once upon a time, in {place_in}, there lived a little {hero.species.en} called {hero.name}."


def _follow(choice: str | None, names: dict[str, str], lang: str) -> str:
    """The opening that makes the page visibly follow what the reader chose."""
    if choice is None:
        template = "{h}和{f}继续往前走。" if lang == "zh" else "{H} and {F} walked on together."
        return template.format(**names)
    option = _option_named(choice)
    if option is not None:
        return (option.zh_after if lang == "zh" else option.en_after).format(**names)
    said = choice.rstrip("。！!？?，,.；; ")
    if lang == "zh":
        said = said if len(said) <= 30 else said[:29] + "…"
        return f"“{said}！”{names['h']}说。大家都觉得这是个好主意，马上就这么做了。"
    said = said if len(said) <= 80 else said[:79] + "…"
    said = said[:1].upper() + said[1:]
    return (
        f'"{said}!" said {names["H"]}. Everyone thought it was a splendid idea, '
        "so that is just what they did."
    )


def _option_named(choice: str) -> Option | None:
    wanted = choice.rstrip("。！!？?，,.；; ").lower()
    for beat in BEATS:
        for option in beat.options:
            if wanted in (option.zh, option.en.lower()):
                return option
    return None


def _beat_for(book: dict[str, Any], premise: str, lang: str, index: int) -> Beat:
    arc = book.get("arc")
    if isinstance(arc, list) and index < len(arc) and isinstance(arc[index], str):
        for beat in BEATS:
            if _arc_of(beat, lang) in arc[index]:
                return beat
    order = _beat_order(premise, lang)
    return order[index % len(order)]


def _beat_order(premise: str, lang: str) -> list[Beat]:
    beats = list(BEATS)
    _rng("beats", premise, lang).shuffle(beats)
    return beats


def _arc_of(beat: Beat, lang: str) -> str:
    return beat.arc_zh if lang == "zh" else beat.arc_en


def _premise_short(premise: str, lang: str) -> str:
    first = re.split(r"[。！？；!?;\n]|\.\s", premise.strip(), maxsplit=1)[0].strip(" .,，")
    if lang == "zh":
        if len(first) > 24:
            cut = first[:24].rfind("，")
            first = first[:cut] if cut >= 8 else first[:24]
        return first
    words = first.split()
    return " ".join(words[:14])


def _compose(parts: list[tuple[str, bool]], lang: str) -> str:
    """Join the sentences, dropping optional ones (last first) until a Chinese page fits."""
    sep = "" if lang == "zh" else " "
    kept = list(parts)
    while lang == "zh" and len("".join(t for t, _ in kept)) > ZH_MAX:
        droppable = [i for i, (_, optional) in enumerate(kept) if optional]
        if not droppable:
            break
        kept.pop(droppable[-1])
    return sep.join(t for t, _ in kept)


# ------------------------------------------------------------------------ helpers


def _rng(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _language(ctx: dict[str, Any]) -> str:
    return "zh" if ctx.get("language") == "zh" else "en"


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _total_pages(ctx: dict[str, Any]) -> int:
    return max(1, min(_int(ctx.get("total_pages"), 6), 60))


def _page_index(ctx: dict[str, Any]) -> int:
    if "page" in ctx:
        return max(0, _int(ctx.get("page"), 0))
    return max(0, _int(ctx.get("page_number"), 1) - 1)


# ------------------------------------------------------------------------ judgement


def judge(ctx: dict[str, Any]) -> dict[str, Any]:
    """A suitability verdict in the shape the classification prompt asks for."""
    text = str(ctx.get("text", "")).lower()
    hit = next((idea for idea in UNSUITABLE_IDEAS if idea in text), None)
    if hit:
        return {"suitable": False, "reason": f"not for a picture book: {hit}"}
    return {"suitable": True, "reason": "a gentle story idea"}
