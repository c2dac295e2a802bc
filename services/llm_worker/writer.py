"""Reads the page JSON while it is being written.

The model writes `{"illustration": ..., "text": ..., "choices": [...]}` in that
order. As soon as the illustration string is closed we know the picture to draw,
long before the text is finished; while the text string grows we pass on what is
new. jiter (the partial JSON parser the openai SDK itself uses) parses the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import jiter

from services.common.contracts import Character, PageDraft


@dataclass
class Progress:
    illustration: str | None = None  # set once, when the string is complete
    new_text: str = ""


class PageReader:
    def __init__(self) -> None:
        self._buf = ""
        self._text = ""
        self._illustration: str | None = None

    @property
    def text(self) -> str:
        return self._text

    def feed(self, piece: str) -> Progress:
        self._buf += piece
        progress = Progress()
        start = self._buf.find("{")
        if start < 0:
            return progress
        raw = self._buf[start:].encode()
        if self._illustration is None:
            complete = _parse(raw, "on")
            ill = complete.get("illustration") if isinstance(complete, dict) else None
            if isinstance(ill, str) and ill.strip():
                self._illustration = ill.strip()
                progress.illustration = self._illustration
        partial = _parse(raw, "trailing-strings")
        text = partial.get("text") if isinstance(partial, dict) else None
        if isinstance(text, str) and len(text) > len(self._text) and text.startswith(self._text):
            progress.new_text = text[len(self._text) :]
            self._text = text
        return progress

    def finish(self) -> PageDraft:
        """The whole page, or ValueError when the model did not write one."""
        # Tolerate a Markdown fence or chatter around the object.
        body = self._buf[self._buf.find("{") : self._buf.rfind("}") + 1]
        try:
            data = jiter.from_json(body.encode())
        except ValueError as exc:
            raise ValueError(f"the page is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("the page is not a JSON object")
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("the page has no text")
        illustration = data.get("illustration")
        if not isinstance(illustration, str) or not illustration.strip():
            # Without a scene from the model, draw the page's opening instead.
            illustration = text.strip()[:200]
        raw_choices = data.get("choices") or []
        if not isinstance(raw_choices, list):
            raise ValueError("choices is not a list")
        choices = [str(c).strip() for c in raw_choices if str(c).strip()]
        alt = data.get("alt")
        return PageDraft(
            illustration=illustration.strip(),
            text=text.strip(),
            choices=choices,
            alt=alt.strip()[:300] if isinstance(alt, str) else "",
        )


def _parse(raw: bytes, mode: str) -> object:
    try:
        return jiter.from_json(raw, partial_mode=mode)  # type: ignore[arg-type]
    except ValueError:
        return None


class OutlineReader:
    """Reads the outline JSON while it is being written, for the character sheet.

    The sheet needs the characters and the style, which the model writes before the
    setting and the page-by-page arc; knowing them early lets the sheet be drawn while
    the rest of the outline is still being written. `feed` returns them once, when both
    are complete: the style string closed, and the characters list followed by a later
    key (so no character is still being written).
    """

    def __init__(self) -> None:
        self._buf = ""
        self._done = False

    def feed(self, piece: str) -> tuple[list[Character], str] | None:
        self._buf += piece
        if self._done:
            return None
        start = self._buf.find("{")
        if start < 0:
            return None
        raw = self._buf[start:].encode()
        started = _parse(raw, "trailing-strings")  # every key begun, strings cut short
        complete = _parse(raw, "on")  # only strings already closed
        if not isinstance(started, dict) or not isinstance(complete, dict):
            return None
        keys = list(started)
        if "characters" not in keys or keys[-1] == "characters":
            return None
        style = complete.get("style")
        if not isinstance(style, str) or not style.strip():
            return None
        if keys[-1] == "style" and started.get("style") != style:
            return None
        try:
            characters = [Character.model_validate(c) for c in complete.get("characters") or []]
        except ValueError:
            return None
        self._done = True
        return characters, style.strip()
