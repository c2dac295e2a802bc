"""The Ark fake as Volcengine's docs describe Ark, and the image_worker's Ark client against it."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from services.devstack.procs import free_port
from services.fakes import ark
from services.fakes.serving import BackgroundServer
from services.image_worker import ark as ark_client
from services.image_worker.ark import Ark
from services.image_worker.provider import ImageError, Tally
from tests.fakes.conftest import ARK_KEY

AUTH = {"Authorization": f"Bearer {ARK_KEY}"}
MODEL = "doubao-seedream-4-0-250828"


async def post(
    http: httpx.AsyncClient, server: BackgroundServer, body: dict[str, Any], *, key: str = ARK_KEY
) -> httpx.Response:
    return await http.post(f"{server.url}{ark.PATH}", json=body, headers={"Authorization": f"Bearer {key}"})


async def stats(http: httpx.AsyncClient, server: BackgroundServer) -> dict[str, Any]:
    result: dict[str, Any] = (await http.get(f"{server.url}/_fake/stats")).json()
    return result


def red_data_uri() -> str:
    out = io.BytesIO()
    Image.new("RGB", (120, 90), (230, 20, 20)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "param", "type"}, body
    error: dict[str, Any] = body["error"]
    return error


async def test_a_picture_of_the_asked_size_with_a_signed_url(
    ark_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    r = await post(http, ark_server, {"model": MODEL, "prompt": "a hedgehog", "size": "2352x1760"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == MODEL and body["usage"]["generated_images"] == 1
    (item,) = body["data"]
    assert item["size"] == "2352x1760" and "X-Tos-Signature=" in item["url"]
    picture = await http.get(item["url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(picture.content))
    assert abs(image.width / image.height - 4 / 3) < 0.02
    assert (await stats(http, ark_server))["paid"] == 1


@pytest.mark.parametrize(
    "body, key, status, code, param",
    [
        ({"model": MODEL, "prompt": "x"}, "wrong-key", 401, "AuthenticationError", ""),
        ({"prompt": "x"}, ARK_KEY, 400, "MissingParameter", "model"),
        ({"model": "no-such-model", "prompt": "x"}, ARK_KEY, 404, "InvalidEndpointOrModel.NotFound", ""),
        ({"model": MODEL}, ARK_KEY, 400, "MissingParameter", "prompt"),
        ({"model": MODEL, "prompt": "x", "size": "100x100"}, ARK_KEY, 400, "InvalidParameter", "size"),
        ({"model": MODEL, "prompt": "x", "size": "8192x8192"}, ARK_KEY, 400, "InvalidParameter", "size"),
        ({"model": MODEL, "prompt": "x", "size": "3K"}, ARK_KEY, 400, "InvalidParameter", "size"),
        (
            {"model": MODEL, "prompt": "x", "image": ["data:image/png;base64,AAAA"] * 15},
            ARK_KEY,
            400,
            "InvalidParameter.UnsupportedImageCount",
            "image",
        ),
        ({"model": MODEL, "prompt": "x", "image": "not an image"}, ARK_KEY, 400, "InvalidParameter", "image"),
        ({"model": MODEL, "prompt": "x", "watermark": "no"}, ARK_KEY, 400, "InvalidParameter", "watermark"),
    ],
)
async def test_what_ark_rejects(
    ark_server: BackgroundServer,
    http: httpx.AsyncClient,
    body: dict[str, Any],
    key: str,
    status: int,
    code: str,
    param: str,
) -> None:
    r = await post(http, ark_server, body, key=key)
    assert r.status_code == status
    error = error_of(r)
    assert error["code"] == code and error["param"] == param and "Request id:" in error["message"]
    assert (await stats(http, ark_server))["paid"] == 0


async def test_a_key_is_checked_before_the_model_and_the_model_before_the_parameters(
    start_ark: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_ark(open_models=frozenset())
    assert (await post(http, server, {"model": MODEL}, key="bad")).status_code == 401
    r = await post(http, server, {"model": MODEL})
    assert r.status_code == 404 and error_of(r)["code"] == "ModelNotOpen"


async def test_the_reference_image_is_used(ark_server: BackgroundServer, http: httpx.AsyncClient) -> None:
    r = await post(
        http, ark_server, {"model": MODEL, "prompt": "x", "size": "2048x2048", "image": red_data_uri()}
    )
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO((await http.get(r.json()["data"][0]["url"])).content)).convert("RGB")
    red, green, blue = image.getpixel((image.width - 40, image.height - 40))  # type: ignore[misc]
    assert red > 180 and green < 80 and blue < 80


async def test_urls_expire_and_cannot_be_forged(
    start_ark: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_ark(url_ttl=1.0)
    url = (await post(http, server, {"model": MODEL, "prompt": "x"})).json()["data"][0]["url"]
    assert (await http.get(url.replace("Signature=", "Signature=0"))).status_code == 403
    assert (await http.get(url)).status_code == 200
    await asyncio.sleep(2.1)
    expired = await http.get(url)
    assert expired.status_code == 403 and b"AccessDenied" in expired.content


@pytest.mark.parametrize(
    "mode, status, code",
    [
        ("auth", 401, "AuthenticationError"),
        ("overdue", 403, "AccountOverdueError"),
        ("model_not_open", 404, "ModelNotOpen"),
        ("rate_limit", 429, "RateLimitExceeded.EndpointRPMExceeded"),
        ("quota", 429, "QuotaExceeded"),
        ("content_policy_input", 400, "InputTextRiskDetection"),
        ("content_policy_image", 400, "InputImageRiskDetection"),
        ("content_policy_output", 400, "OutputImageRiskDetection"),
        ("server_error", 500, "InternalServiceError"),
        ("unavailable", 503, "ServiceUnavailable"),
    ],
)
async def test_fault_modes(
    ark_server: BackgroundServer, http: httpx.AsyncClient, mode: str, status: int, code: str
) -> None:
    await http.post(f"{ark_server.url}/_fake/faults", json={"mode": mode})
    # A key check (no prompt) does not take the fault meant for a picture.
    assert (await post(http, ark_server, {"model": MODEL})).status_code == 400
    r = await post(http, ark_server, {"model": MODEL, "prompt": "x"})
    assert r.status_code == status and error_of(r)["code"] == code
    assert (await post(http, ark_server, {"model": MODEL, "prompt": "x"})).status_code == 200
    assert (await stats(http, ark_server))["paid"] == 1


async def test_a_picture_is_finished_and_paid_when_its_client_has_gone(
    start_ark: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_ark(image_seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        await http.post(
            f"{server.url}{ark.PATH}",
            json={"model": MODEL, "prompt": "x"},
            headers=AUTH,
            timeout=httpx.Timeout(5, read=0.3),
        )
    assert (await stats(http, server))["paid"] == 0
    await asyncio.sleep(1.2)
    after = await stats(http, server)
    assert after["paid"] == 1 and after["abandoned"] == 1 and after["generating"] == 0


async def test_faults_from_the_command_line_and_unknown_modes_refused(
    start_ark: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_ark(faults=(("quota", 2),))
    for _ in range(2):
        assert (await post(http, server, {"model": MODEL, "prompt": "x"})).status_code == 429
    assert (await post(http, server, {"model": MODEL, "prompt": "x"})).status_code == 200
    refused = await http.post(f"{server.url}/_fake/faults", json={"mode": "nope"})
    assert refused.status_code == 400 and "rate_limit" in refused.text


# ------------------------------------------------------------ the image_worker's client


def client(server: BackgroundServer | str, *, key: str = ARK_KEY, timeout: float = 10.0) -> Ark:
    url = server if isinstance(server, str) else server.url
    return Ark(base_url=f"{url}/api/v3", api_key=key, model=MODEL, size="2K", timeout=timeout)


async def test_the_client_draws_in_the_page_shape_from_the_sheet(
    ark_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    provider, tally = client(ark_server), Tally()
    try:
        url = await provider.draw(prompt="a fox", ratio="4:3", reference=red_data_uri(), tally=tally)
        assert await provider.readiness() == {"ark": "ok"}
    finally:
        await provider.close()
    assert tally.calls == 1 and (await http.get(url)).status_code == 200
    sent = (await stats(http, ark_server))["last_request"]
    assert sent["size"] == "2352x1760" and sent["image"].startswith("data:image/png;base64,")
    assert sent["watermark"] is False and sent["sequential_image_generation"] == "disabled"


@pytest.mark.parametrize(
    "mode, code, retryable, policy",
    [
        ("rate_limit", "image_failed", True, False),
        ("server_error", "image_failed", True, False),
        ("unavailable", "image_failed", True, False),
        ("quota", "image_no_credits", False, False),
        ("overdue", "image_no_credits", False, False),
        ("auth", "image_auth", False, False),
        ("model_not_open", "image_config", False, False),
        ("content_policy_input", "image_content_policy", False, True),
        ("content_policy_output", "image_content_policy", False, True),
    ],
)
async def test_the_client_classifies_each_fault(
    ark_server: BackgroundServer,
    http: httpx.AsyncClient,
    mode: str,
    code: str,
    retryable: bool,
    policy: bool,
) -> None:
    await http.post(f"{ark_server.url}/_fake/faults", json={"mode": mode})
    provider, tally = client(ark_server), Tally()
    try:
        with pytest.raises(ImageError) as info:
            await provider.draw(prompt="x", ratio="1:1", reference=None, tally=tally)
    finally:
        await provider.close()
    err = info.value
    assert (err.code, err.retryable, err.policy) == (code, retryable, policy), err
    assert tally.calls == 1


async def test_a_bad_key_fails_at_once_and_readiness_names_the_variable(
    ark_server: BackgroundServer,
) -> None:
    provider, tally = client(ark_server, key="ark-wrong-key-9999"), Tally()
    try:
        ready = (await provider.readiness())["ark"]
        with pytest.raises(ImageError) as info:
            await provider.draw(prompt="x", ratio="1:1", reference=None, tally=tally)
    finally:
        await provider.close()
    assert ready.startswith("the key was refused (401)") and "ARK_API_KEY" in ready
    assert (
        info.value.code == "image_auth" and not info.value.retryable and "ARK_API_KEY" in info.value.message
    )
    assert "ark-wrong-key-9999" not in ready + info.value.message


async def test_an_answer_that_never_comes_is_not_asked_for_again(
    start_ark: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_ark(image_seconds=1.0)
    provider, tally = client(server, timeout=0.3), Tally()
    started = time.monotonic()
    try:
        with pytest.raises(ImageError) as info:
            await provider.draw(prompt="x", ratio="1:1", reference=None, tally=tally)
    finally:
        await provider.close()
    assert time.monotonic() - started < 1.0
    assert info.value.code == "image_timeout" and not info.value.retryable and tally.calls == 1
    await asyncio.sleep(1.2)
    assert (await stats(http, server))["paid"] == 1, "Ark finished the picture: it was paid for once"


async def test_a_connection_that_cannot_be_opened_is_retryable_and_costs_nothing() -> None:
    provider, tally = client(f"http://127.0.0.1:{free_port()}"), Tally()
    try:
        with pytest.raises(ImageError) as info:
            await provider.draw(prompt="x", ratio="1:1", reference=None, tally=tally)
        ready = (await provider.readiness())["ark"]
    finally:
        await provider.close()
    assert info.value.code == "image_failed" and info.value.retryable and tally.calls == 0
    assert ready.startswith("unreachable at ARK_BASE_URL")


async def test_quota_stays_in_readiness_until_a_picture_is_drawn_again(
    ark_server: BackgroundServer, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The no-prompt probe cannot see quota: what a picture was told must not be forgotten.
    monkeypatch.setattr(ark_client, "CHECK_EVERY", 0.0)
    await http.post(f"{ark_server.url}/_fake/faults", json={"mode": "quota"})
    provider = client(ark_server)
    try:
        with pytest.raises(ImageError):
            await provider.draw(prompt="x", ratio="1:1", reference=None, tally=Tally())
        for _ in range(2):  # the probe is asked again each time, and answers "ok"
            assert "quota" in (await provider.readiness())["ark"].lower()
        await provider.draw(prompt="x", ratio="1:1", reference=None, tally=Tally())
        assert await provider.readiness() == {"ark": "ok"}
    finally:
        await provider.close()
