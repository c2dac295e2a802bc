"""The reader-event protocol: one model per event in services.common.events, and README's
table, the AsyncAPI document and the page's handlers all list exactly those events."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from services.common import contracts as c
from services.common import events as ev

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "services" / "gateway" / "static"


def readme_events() -> dict[str, tuple[set[str], bool]]:
    """type -> (the names written in backticks in its fields cell, durable) from README."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| type | fields | durable") :].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        type_ = cells[0].strip("`")
        rows[type_] = (set(re.findall(r"`(\w+)", cells[1])), cells[2].startswith("yes"))
    return rows


def test_the_readme_table_lists_every_event_with_its_fields() -> None:
    rows = readme_events()
    assert set(rows) == set(ev.EVENTS), "README's event table and services.common.events differ"
    for type_, model in ev.EVENTS.items():
        mentioned, durable = rows[type_]
        assert durable == model.durable, f"{type_}: durable is {model.durable} in the code"
        missing = set(model.model_fields) - mentioned
        assert not missing, f"README's row of {type_} does not mention {sorted(missing)}"


def test_the_asyncapi_document_has_every_event() -> None:
    doc = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    listed = {m["name"] for k, m in doc["components"]["messages"].items() if k.startswith("reader.")}
    assert listed == set(ev.EVENTS)
    for type_, model in ev.EVENTS.items():
        schema = doc["components"]["schemas"][f"reader.{type_}"]
        assert schema["properties"]["type"] == {"const": type_}
        assert set(model.model_fields) <= set(schema["properties"])
        assert ("seq" in schema["properties"]) == model.durable


def test_the_page_handles_every_event_and_no_other() -> None:
    story_js = (STATIC / "story.js").read_text()
    # applyEvent looks each event up in two tables, story-wide and per page: their keys.
    handled: set[str] = set()
    for table in ("STORY_EVENTS", "PAGE_EVENTS"):
        body = story_js[story_js.index(f"const {table} = {{") :]
        body = body[: body.index("\n};\n")]
        handled |= set(re.findall(r"^  '([a-z.]+)':", body, re.M))
    # A refused client frame is shown where the socket is read, not applied to the story.
    assert handled == set(ev.EVENTS) - {ev.SocketError.type}, "story.js applyEvent and the events differ"
    pages = "".join(p.read_text() for p in STATIC.glob("**/*.js"))
    assert f"type === '{ev.SocketError.type}'" in pages


def test_a_stored_event_is_checked_against_its_model() -> None:
    fine = c.LiveEvent(
        story_id="s", seq=1, type="page.started", data={"page": 0, "at": "2026-01-01T00:00:00Z"}
    )
    assert fine.data["page"] == 0
    with pytest.raises(ValidationError, match="not a stored reader event"):
        c.LiveEvent(story_id="s", seq=1, type="story.failed", data={})
    with pytest.raises(ValidationError, match="not a stored reader event"):
        c.LiveEvent(story_id="s", seq=1, type="page.text.delta", data={"page": 0})
    with pytest.raises(ValidationError):
        c.LiveEvent(story_id="s", seq=1, type="page.failed", data={"page": 0})  # no error


def test_frames_carry_optional_fields_only_when_set() -> None:
    assert ev.PageTextDone(page=1, text="t", choices=[]).frame(seq=3) == {
        "type": "page.text.done",
        "seq": 3,
        "page": 1,
        "text": "t",
        "choices": [],
    }
    done = ev.PageImageDone(page=0, url="/media/x.png", note=None).frame()
    assert done["note"] is None and done["reference"] == "text_only"
