"""The jimeng fake, seen through httpx as the image_worker sees it."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops

from services.fakes.serving import BackgroundServer

SESSION = {"Authorization": "Bearer sess-good"}


async def generate(
    http: httpx.AsyncClient,
    server: BackgroundServer,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    path: str = "/v1/images/generations",
) -> dict[str, Any]:
    response = await http.post(f"{server.url}{path}", json=body, headers=headers or SESSION)
    assert response.status_code == 200  # jimeng-api: errors too
    result: dict[str, Any] = response.json()
    return result


async def fetch_image(http: httpx.AsyncClient, url: str) -> Image.Image:
    response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "WEBP"
    return image.convert("RGB")


async def test_ping_and_models(jimeng_server: BackgroundServer, http: httpx.AsyncClient) -> None:
    ping = await http.get(f"{jimeng_server.url}/ping")
    assert ping.text == "pong"
    models = (await http.get(f"{jimeng_server.url}/v1/models")).json()
    assert "jimeng-4.5" in [m["id"] for m in models["data"]]


async def test_generation_returns_four_signed_webp_urls(
    jimeng_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    result = await generate(http, jimeng_server, {"prompt": "Pip in a forest", "ratio": "16:9"})
    assert isinstance(result["created"], int)
    urls = [item["url"] for item in result["data"]]
    assert len(urls) == 4
    assert all(u.startswith(f"{jimeng_server.url}/files/") for u in urls)
    assert all(".webp?expires=" in u and "&sig=" in u for u in urls)
    image = await fetch_image(http, urls[0])
    width, height = image.size
    assert max(width, height) <= 768 and abs(width / height - 16 / 9) < 0.02
    stats = (await http.get(f"{jimeng_server.url}/_fake/stats")).json()
    assert stats["images_served"] == 1 and stats["sessions_used"] == {"sess-good": 1}


async def test_pictures_differ_by_prompt(jimeng_server: BackgroundServer, http: httpx.AsyncClient) -> None:
    images = []
    for prompt in ("a hedgehog under the stars", "a rabbit on a sunny beach"):
        result = await generate(http, jimeng_server, {"prompt": prompt, "ratio": "4:3"})
        images.append(await fetch_image(http, result["data"][0]["url"]))
    assert images[0].size == images[1].size == (640, 480)
    assert ImageChops.difference(images[0], images[1]).getbbox() is not None


async def test_b64_json(jimeng_server: BackgroundServer, http: httpx.AsyncClient) -> None:
    result = await generate(
        http, jimeng_server, {"prompt": "x", "ratio": "9:16", "response_format": "b64_json"}
    )
    assert len(result["data"]) == 4
    image = Image.open(io.BytesIO(base64.b64decode(result["data"][0]["b64_json"])))
    assert image.format == "WEBP" and image.size[0] < image.size[1]


async def test_size_is_refused_with_http_200(
    jimeng_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    result = await generate(http, jimeng_server, {"prompt": "x", "size": "1024x1024"})
    assert result["code"] == -1000 and result["data"] is None
    assert result["message"].startswith("不支持的参数: size")


@pytest.mark.parametrize(
    "body, code, message",
    [
        ({}, -2000, "Params body.prompt invalid"),
        ({"prompt": 3}, -2000, "Params body.prompt invalid"),
        ({"prompt": "x", "ratio": "5:4"}, -1000, "不支持的比例"),
        ({"prompt": "x", "resolution": "8k"}, -1000, "不支持的分辨率"),
    ],
)
async def test_bad_parameters(
    jimeng_server: BackgroundServer,
    http: httpx.AsyncClient,
    body: dict[str, Any],
    code: int,
    message: str,
) -> None:
    result = await generate(http, jimeng_server, body)
    assert result["code"] == code and message in result["message"]


async def test_unknown_model_falls_back_silently(
    jimeng_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    result = await generate(http, jimeng_server, {"prompt": "x", "model": "jimeng-99"})
    assert len(result["data"]) == 4
    stats = (await http.get(f"{jimeng_server.url}/_fake/stats")).json()
    assert stats["models_used"] == {"jimeng-4.5": 1}


async def test_session_ids(start_jimeng: Callable[..., BackgroundServer], http: httpx.AsyncClient) -> None:
    server = start_jimeng(dead_ids=frozenset({"sess-old"}))
    # No header at all: jimeng-api's own parameter check, not a login error.
    missing = await generate(http, server, {"prompt": "x"}, headers={"X": "y"})
    assert missing["code"] == -2000 and "authorization" in missing["message"]
    dead = await generate(http, server, {"prompt": "x"}, headers={"Authorization": "Bearer sess-old"})
    assert dead["code"] == -2002
    assert dead["message"] == "[登录失效]: check login error。请重新获取refresh_token并更新配置"
    # The region prefix does not hide a dead id.
    prefixed = await generate(http, server, {"prompt": "x"}, headers={"Authorization": "Bearer us-sess-old"})
    assert prefixed["code"] == -2002


async def test_several_ids_are_picked_at_random(
    start_jimeng: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_jimeng(dead_ids=frozenset({"b"}))
    outcomes = set()
    for _ in range(30):
        result = await generate(
            http,
            server,
            {"prompt": "x", "response_format": "b64_json"},
            headers={"Authorization": "Bearer a,b"},
        )
        outcomes.add(result.get("code", 0))
    assert outcomes == {0, -2002}  # no failover: the dead one fails now and then
    stats = (await http.get(f"{server.url}/_fake/stats")).json()
    assert set(stats["sessions_used"]) == {"a", "b"}


async def test_live_ids_and_token_check(
    start_jimeng: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_jimeng(live_ids=frozenset({"good"}))

    async def live(token: str) -> bool:
        answer = (await http.post(f"{server.url}/token/check", json={"token": token})).json()
        assert isinstance(answer["live"], bool)
        return bool(answer["live"])

    assert await live("good") and not await live("other")
    changed = await http.post(f"{server.url}/_fake/sessions", json={"dead": ["good"]})
    assert changed.json()["dead"] == ["good"]
    assert not await live("good")
    await http.post(f"{server.url}/_fake/sessions", json={"live": ["good", "other"]})
    assert await live("good") and await live("other")
    assert (await http.post(f"{server.url}/token/check", json={})).json()["code"] == -2000


async def test_token_points(jimeng_server: BackgroundServer, http: httpx.AsyncClient) -> None:
    url = f"{jimeng_server.url}/token/points"
    points = (await http.post(url, headers={"Authorization": "Bearer a,b"})).json()
    assert [p["token"] for p in points] == ["a", "b"]
    assert set(points[0]["points"]) == {"giftCredit", "purchaseCredit", "vipCredit", "totalCredit"}
    await http.post(f"{jimeng_server.url}/_fake/sessions", json={"dead": ["b"]})
    assert (await http.post(url, headers={"Authorization": "Bearer a,b"})).json()["code"] == -2002


async def test_urls_expire_and_cannot_be_forged(
    start_jimeng: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_jimeng(url_ttl=1)
    result = await generate(http, server, {"prompt": "x"})
    url = result["data"][0]["url"]
    await fetch_image(http, url)
    forged = await http.get(url[:-4] + "abcd")
    assert forged.status_code == 403 and "SignatureDoesNotMatch" in forged.text
    expires = int(url.split("expires=")[1].split("&")[0])
    await asyncio.sleep(max(expires - time.time(), 0) + 0.2)
    expired = await http.get(url)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text


FAULT_CODES = [
    ("session_expired", -2002, "登录失效"),
    ("no_credits", -2009, "[积分不足]: credit prededuct not enough"),
    ("credits_refused", -2001, "错误码: 1006"),
    ("anti_bot", -2001, "[请求失败]: shark not pass (错误码: 1019)"),
    ("content_policy_submit", -2006, "[内容违规]"),
    ("content_policy", -2007, "图像生成失败，状态码: 30，错误码: 2038"),
    ("generation_timeout", -2007, "timed out with no results"),
    ("plain_error", -1000, "timeout of 45000ms exceeded"),
]


@pytest.mark.parametrize("mode, code, message", FAULT_CODES)
async def test_fault_modes(
    jimeng_server: BackgroundServer, http: httpx.AsyncClient, mode: str, code: int, message: str
) -> None:
    queued = await http.post(f"{jimeng_server.url}/_fake/faults", json={"mode": mode, "count": 2})
    assert queued.status_code == 200
    for path in ("/v1/images/generations", "/v1/images/compositions"):
        body: dict[str, Any] = {"prompt": "x", "images": [red_data_uri()]}
        result = await generate(http, jimeng_server, body, path=path)
        assert result["code"] == code and result["data"] is None
        assert message in result["message"]
    assert "url" in (await generate(http, jimeng_server, {"prompt": "x"}))["data"][0]


async def test_empty_data_fault(jimeng_server: BackgroundServer, http: httpx.AsyncClient) -> None:
    await http.post(f"{jimeng_server.url}/_fake/faults", json={"mode": "empty_data"})
    result = await generate(http, jimeng_server, {"prompt": "x"})
    assert result["data"] == [] and "code" not in result


async def test_hang_holds_the_request(jimeng_server: BackgroundServer, http: httpx.AsyncClient) -> None:
    await http.post(f"{jimeng_server.url}/_fake/faults", json={"mode": "hang", "seconds": 0.5})
    started = time.monotonic()
    result = await generate(http, jimeng_server, {"prompt": "x"})
    assert time.monotonic() - started >= 0.5 and len(result["data"]) == 4
    # A caller with its own, shorter timeout gives up while the fake still holds on.
    await http.post(f"{jimeng_server.url}/_fake/faults", json={"mode": "hang"})
    with pytest.raises(httpx.ReadTimeout):
        await http.post(
            f"{jimeng_server.url}/v1/images/generations",
            json={"prompt": "x"},
            headers=SESSION,
            timeout=httpx.Timeout(5, read=0.3),
        )


def red_data_uri() -> str:
    out = io.BytesIO()
    Image.new("RGB", (120, 90), (230, 20, 20)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def test_compositions_carry_the_reference(
    jimeng_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    result = await generate(
        http,
        jimeng_server,
        {"prompt": "x", "images": [red_data_uri()], "ratio": "1:1"},
        path="/v1/images/compositions",
    )
    assert result["input_images"] == 1 and len(result["data"]) == 4
    image = await fetch_image(http, result["data"][0]["url"])
    pixel: Any = image.getpixel((image.width - 40, image.height - 40))
    r, g, b = pixel
    assert r > 180 and g < 80 and b < 80
    plain = await generate(http, jimeng_server, {"prompt": "x", "ratio": "1:1"})
    without = await fetch_image(http, plain["data"][0]["url"])
    assert ImageChops.difference(image, without).getbbox() is not None

    # A URL reference is downloaded, here one of the fake's own pictures.
    by_url = await generate(
        http,
        jimeng_server,
        {"prompt": "y", "images": [{"url": result["data"][0]["url"]}]},
        path="/v1/images/compositions",
    )
    assert len(by_url["data"]) == 4


@pytest.mark.parametrize(
    "images, code",
    [(None, -2000), ([], -1000), (["x"] * 11, -1000), (["http://127.0.0.1:9/nothing.png"], -1000)],
)
async def test_composition_reference_errors(
    jimeng_server: BackgroundServer, http: httpx.AsyncClient, images: Any, code: int
) -> None:
    body: dict[str, Any] = {"prompt": "x"} if images is None else {"prompt": "x", "images": images}
    result = await generate(http, jimeng_server, body, path="/v1/images/compositions")
    assert result["code"] == code


async def test_unknown_route_is_an_http_200_error(
    jimeng_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{jimeng_server.url}/health")
    assert response.status_code == 200 and response.json()["code"] == -1000


async def test_faults_from_config_and_stats(
    start_jimeng: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_jimeng(faults=(("anti_bot", 1),))
    assert (await generate(http, server, {"prompt": "x"}))["code"] == -2001
    assert "data" in await generate(http, server, {"prompt": "x", "images": ["a" * 500]})
    stats = (await http.get(f"{server.url}/_fake/stats")).json()
    assert stats["faults_served"] == {"anti_bot": 1}
    assert stats["requests"]["generations"] == 2
    assert len(stats["last_request"]["images"][0]) < 300  # long values are cut for stats


# ------------------------------------------------- what the real server does that is easy to miss


async def test_a_generation_goes_on_and_is_paid_after_its_client_left(
    start_jimeng: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_jimeng(image_seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        await http.post(
            f"{server.url}/v1/images/generations", json={"prompt": "x"}, headers=SESSION, timeout=0.1
        )
    assert (await http.get(f"{server.url}/_fake/stats")).json()["paid"] == 0, "not drawn yet"
    await asyncio.sleep(0.9)
    stats = (await http.get(f"{server.url}/_fake/stats")).json()
    assert stats["paid"] == 1 and stats["paid_unseen"] == 1, "drawn and charged for nobody"
    await generate(http, server, {"prompt": "y"})
    stats = (await http.get(f"{server.url}/_fake/stats")).json()
    assert stats["paid"] == 2 and stats["paid_unseen"] == 1


async def test_an_unreachable_upstream_fails_slowly_and_token_check_says_false(
    start_jimeng: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_jimeng(upstream_down=True, time_scale=0.02)  # 15 s -> 0.3 s, 30 s -> 0.6 s

    async def timed(path: str, **kwargs: Any) -> tuple[Any, float]:
        started = time.monotonic()
        answer = (await http.post(f"{server.url}{path}", **kwargs)).json()
        return answer, time.monotonic() - started

    answer, took = await timed("/v1/images/generations", json={"prompt": "x"}, headers=SESSION)
    assert answer["code"] == -1000 and "ENOTFOUND" in answer["message"] and took >= 0.3
    body = {"prompt": "x", "images": [red_data_uri()]}
    answer, took = await timed("/v1/images/compositions", json=body, headers=SESSION)
    assert answer["code"] == -2007 and "图片上传失败" in answer["message"] and took >= 0.6
    answer, took = await timed("/token/check", json={"token": "sess-good"})
    assert answer == {"live": False} and took >= 0.3, "false for a live id: it proves nothing"
    answer, took = await timed("/token/points", headers=SESSION)
    assert answer["code"] == -1000 and took >= 0.3
    await http.post(f"{server.url}/_fake/upstream", json={"down": False})
    assert (await http.post(f"{server.url}/token/check", json={"token": "sess-good"})).json()["live"]
    assert (await http.get(f"{server.url}/_fake/stats")).json()["paid"] == 0


async def test_region_ids_refuse_models_the_international_site_lacks_at_once(
    jimeng_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    region = {"Authorization": "Bearer us-sess-good"}
    started = time.monotonic()
    refused = await generate(http, jimeng_server, {"prompt": "x", "model": "jimeng-5.0"}, headers=region)
    assert refused["code"] == -1000 and "国际版不支持模型" in refused["message"]
    assert time.monotonic() - started < 1.0
    drawn = await generate(http, jimeng_server, {"prompt": "x", "model": "jimeng-4.5"}, headers=region)
    assert len(drawn["data"]) == 4
    mainland = await generate(http, jimeng_server, {"prompt": "x", "model": "jimeng-5.0"})
    assert len(mainland["data"]) == 4


async def test_ids_without_credits(
    start_jimeng: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_jimeng(broke_ids=frozenset({"broke"}))
    refused = await generate(http, server, {"prompt": "x"}, headers={"Authorization": "Bearer broke"})
    assert refused["code"] == -2009
    points = (await http.post(f"{server.url}/token/points", headers={"Authorization": "Bearer broke"})).json()
    assert points[0]["points"]["totalCredit"] == 0
    await http.post(f"{server.url}/_fake/sessions", json={"funded": ["broke"]})
    drawn = await generate(http, server, {"prompt": "x"}, headers={"Authorization": "Bearer broke"})
    assert len(drawn["data"]) == 4


async def test_words_that_switch_on_multi_picture_mode_are_counted(
    jimeng_server: BackgroundServer, http: httpx.AsyncClient
) -> None:
    await generate(http, jimeng_server, {"prompt": "一只兔子，水彩"})
    await generate(http, jimeng_server, {"prompt": "儿童绘本风格的兔子"})
    await generate(http, jimeng_server, {"prompt": "画4张兔子"})
    assert (await http.get(f"{jimeng_server.url}/_fake/stats")).json()["multi_picture_prompts"] == 2
