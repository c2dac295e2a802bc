"""Whatever a client sends, the gateway answers with a clear error or does the job.

Generated inputs against the running gateway: never a 5xx, always the error body,
and the story stays readable afterwards.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from services.devstack.procs import Stack

pytestmark = pytest.mark.e2e

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
story_bodies = st.fixed_dictionaries(
    {},
    optional={
        "premise": st.one_of(st.text(max_size=600), json_values),
        "age": st.one_of(st.integers(-5, 20), json_values),
        "language": st.one_of(st.sampled_from(["zh", "en", "fr", ""]), json_values),
        "style": st.one_of(st.text(max_size=120), json_values),
    },
)
choice_bodies = st.fixed_dictionaries(
    {},
    optional={
        "page": st.one_of(st.integers(-2, 10), json_values),
        "choice": st.one_of(st.integers(-2, 5), json_values),
        "action": st.one_of(st.text(max_size=320), json_values),
    },
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check_error(r: httpx.Response, allowed: set[int]) -> None:
    assert r.status_code in allowed, (r.status_code, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body["error"]["code"], str) and body["error"]["message"]


@FUZZ
@given(body=st.one_of(story_bodies, json_values))
def test_new_story_inputs(stack: Stack, body: Any) -> None:
    r = httpx.post(f"{stack.gateway_url}/api/stories", json=body, timeout=30)
    # No body at all (json=None) goes without a content type: not JSON, so 415.
    check_error(r, {201, 413, 422} | ({415} if body is None else set()))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_new_story_raw_bytes(stack: Stack, raw: bytes) -> None:
    r = httpx.post(
        f"{stack.gateway_url}/api/stories", content=raw, headers={"content-type": "application/json"}
    )
    check_error(r, {201, 422})


@pytest.fixture(scope="module")
def story(stack: Stack) -> dict[str, str]:
    return dict(httpx.post(f"{stack.gateway_url}/api/stories", json={"premise": "小熊的生日会"}).json())


@FUZZ
@given(body=st.one_of(choice_bodies, json_values), token=st.sampled_from(["right", "wrong", ""]))
def test_choice_inputs(stack: Stack, story: dict[str, str], body: Any, token: str) -> None:
    auth = {"right": story["token"], "wrong": "nope", "": ""}[token]
    r = httpx.post(
        f"{stack.gateway_url}/api/stories/{story['story_id']}/choices",
        json=body,
        headers={"Authorization": f"Bearer {auth}"} if auth else {},
    )
    check_error(r, {202, 401, 403, 409, 422} | ({415} if body is None else set()))


@FUZZ
@given(frames=st.lists(st.one_of(st.text(max_size=200), json_values.map(json.dumps)), min_size=1, max_size=5))
def test_socket_frames(stack: Stack, story: dict[str, str], frames: list[str]) -> None:
    base = stack.gateway_url.replace("http", "ws")
    url = f"{base}/ws/stories/{story['story_id']}?token={story['token']}&after=1000000"
    with connect(url, open_timeout=10) as ws:
        for frame in frames:
            ws.send(frame)
        ws.send('{"type": "ping"}')
        # Every bad frame is answered with an error frame; the socket stays open.
        while True:
            msg = json.loads(ws.recv(timeout=10))
            if msg["type"] == "pong":
                break
            if msg["type"] == "error":
                assert msg["error"]["code"] and msg["error"]["message"]
    r = httpx.get(
        f"{stack.gateway_url}/api/stories/{story['story_id']}",
        headers={"Authorization": f"Bearer {story['token']}"},
    )
    assert r.status_code == 200


# ----------------------------------------------------------------- what breaks parsers and databases

# Numbers far beyond any database integer, and beyond what Python converts from text
# (over 4300 digits), as JSON number text.
huge_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n),
    st.sampled_from(["1e999", "-1e999", "1e-99999", "123456789012345678901234567890.5"]),
)
# Text no database column takes: unpaired surrogates and NUL, sent as JSON escapes.
unstorable_text = st.text(
    alphabet=st.sampled_from(["\ud800", "\udfff", "\x00", "a", "熊"]), min_size=1, max_size=8
)
# A path segment: anything but a slash or a dot segment.
segments = st.text(max_size=40).filter(lambda t: "/" not in t and t not in ("", ".", ".."))
JSON = {"content-type": "application/json"}


@FUZZ
@given(depth=st.integers(min_value=1, max_value=20_000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting(stack: Stack, depth: int, opener: str) -> None:
    r = httpx.post(
        f"{stack.gateway_url}/api/stories",
        content=opener * depth,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    check_error(r, {413, 422})


@FUZZ
@given(field=st.sampled_from(["age", "premise", "style", "language"]), number=huge_numbers)
def test_huge_numbers(stack: Stack, field: str, number: str) -> None:
    body = '{"premise": "小熊", "%s": %s}' % (field, number)  # noqa: UP031 - raw JSON on purpose
    r = httpx.post(f"{stack.gateway_url}/api/stories", content=body, headers=JSON, timeout=30)
    check_error(r, {413, 422})


@FUZZ
@given(text=unstorable_text, where=st.sampled_from(["premise", "style", "library"]))
def test_text_no_database_takes(stack: Stack, text: str, where: str) -> None:
    if where == "library":
        url, body = "/api/library", {"stories": [{"story_id": text, "token": text}]}
    else:
        url, body = "/api/stories", {"premise": "小熊的生日", where: text}
    r = httpx.post(
        f"{stack.gateway_url}{url}",
        content=json.dumps(body),  # ensure_ascii: surrogates travel as \ud800 escapes
        headers={"content-type": "application/json"},
        timeout=30,
    )
    check_error(r, {200, 201, 422})


@FUZZ
@given(
    page=st.one_of(huge_numbers, segments),
    call=st.sampled_from(["image/retry", "retry"]),
    token=st.sampled_from(["right", "wrong"]),
)
def test_path_numbers(stack: Stack, story: dict[str, str], page: str, call: str, token: str) -> None:
    auth = story["token"] if token == "right" else "nope"
    r = httpx.post(
        f"{stack.gateway_url}/api/stories/{story['story_id']}/pages/{quote(page, safe='')}/{call}",
        headers={"Authorization": f"Bearer {auth}"},
        timeout=30,
    )
    check_error(r, {202, 403, 404, 409, 422})


@FUZZ
@given(after=st.one_of(huge_numbers, st.text(max_size=12)))
def test_socket_after(stack: Stack, story: dict[str, str], after: str) -> None:
    base = stack.gateway_url.replace("http", "ws")
    url = f"{base}/ws/stories/{story['story_id']}?token={story['token']}&after={quote(after, safe='')}"
    try:
        with connect(url, open_timeout=10) as ws:
            ws.send('{"type": "ping"}')
            while json.loads(ws.recv(timeout=10))["type"] != "pong":
                pass
    except InvalidStatus as exc:
        assert exc.response.status_code == 422
        assert json.loads(exc.response.body or b"{}")["error"]["code"] == "invalid_input"


@FUZZ
@given(depth=st.integers(min_value=900, max_value=20_000), text=unstorable_text)
def test_socket_frames_that_break_parsers(stack: Stack, story: dict[str, str], depth: int, text: str) -> None:
    base = stack.gateway_url.replace("http", "ws")
    url = f"{base}/ws/stories/{story['story_id']}?token={story['token']}&after=1000000"
    with connect(url, open_timeout=10, max_size=None) as ws:
        ws.send("[" * depth)
        ws.send(json.dumps({"type": "act", "page": 0, "text": text}))
        ws.send('{"type": "ping"}')
        errors = 0
        while True:
            msg = json.loads(ws.recv(timeout=10))
            if msg["type"] == "pong":
                break
            errors += msg["type"] == "error"
        assert errors >= 1


@FUZZ
@given(name=segments)
def test_media_names(stack: Stack, story: dict[str, str], name: str) -> None:
    r = httpx.get(f"{stack.gateway_url}/media/{story['story_id']}/{quote(name, safe='')}", timeout=30)
    check_error(r, {404})
