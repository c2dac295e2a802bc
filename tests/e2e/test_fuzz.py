"""Whatever a client sends, the gateway answers with a clear error or does the job.

Generated inputs against the running gateway: never a 5xx, always the error body,
and the story stays readable afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    check_error(r, {201, 413, 422})


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
    check_error(r, {202, 401, 403, 409, 422})


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
