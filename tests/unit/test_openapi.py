"""The OpenAPI document shows every request body and every answer: a route added with a
hand-parsed body or an untyped answer shows here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings

# The calls of README "The public contract" that take a JSON body.
WITH_BODY = {("post", "/api/stories"), ("post", "/api/stories/{story_id}/choices"), ("post", "/api/library")}


@pytest.fixture
def document(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'stories.db'}")
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    app = create_app(GatewaySettings())  # not started: no broker needed to describe it
    spec: dict[str, Any] = app.openapi()
    return spec


def _schema(content: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = next(iter(content.values()))["schema"]
    return schema


def test_every_body_and_every_answer_has_a_schema(document: dict[str, Any]) -> None:
    seen = set()
    for path, item in document["paths"].items():
        for method, op in item.items():
            seen.add((method, path))
            where = f"{method.upper()} {path}"
            body = op.get("requestBody")
            if (method, path) in WITH_BODY:
                assert body is not None, f"{where} takes a body the document does not show"
                assert "$ref" in _schema(body["content"]), where
            else:
                assert body is None, f"{where} shows a body it does not take"
            answers = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            assert answers, f"{where} shows no answer"
            for code, answer in answers.items():
                assert answer.get("content"), f"{where} {code} has no schema"
                assert _schema(answer["content"]), f"{where} {code} has no schema"
            if path.startswith("/api/"):
                errors = op["responses"].get("422") or op["responses"].get("404")
                assert errors is not None and _schema(errors["content"])["$ref"].endswith("/ErrorBody"), where
    assert seen >= WITH_BODY


def test_the_story_view_is_the_public_story(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    story = schemas["StoryView"]["properties"]
    assert list(story) == [
        "story_id", "title", "status", "premise", "age", "language", "style", "total_pages",
        "created_at", "last_seq", "usage", "character_sheet", "pages",
    ]  # fmt: skip
    page = schemas["PageView"]["properties"]
    assert list(page) == ["index", "status", "text", "choices", "chosen", "error", "waiting", "image", "alt"]
    # The child's own hero: optional fields only, so older clients keep working.
    assert set(schemas["NewStory"]["properties"]) == {
        "premise", "age", "language", "style", "hero_name", "hero_picture",
    }  # fmt: skip
    assert set(schemas["NewStory"]["required"]) == {"premise"}
    assert set(schemas["Choice"]["properties"]) == {"page", "choice", "action"}
