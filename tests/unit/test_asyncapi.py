"""docs/asyncapi.yaml is generated from the contracts; it must not drift from them."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.common.asyncapi import build, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def test_committed_document_matches_the_code() -> None:
    assert DOC.read_text() == render(), (
        "docs/asyncapi.yaml is stale: run `python -m services.common.asyncapi > docs/asyncapi.yaml`"
    )


def test_every_message_has_a_schema_and_a_channel() -> None:
    doc = yaml.safe_load(DOC.read_text())
    used = {
        ref["$ref"].rsplit("/", 1)[1] for ch in doc["channels"].values() for ref in ch["messages"].values()
    }
    assert used == set(doc["components"]["messages"])
    for name in used:
        assert doc["components"]["schemas"][name]["properties"], name
    assert build()["channels"]["llmTasks"]["description"].count("storybook.work") == 1
