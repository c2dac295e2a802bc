"""Each documented upstream failure maps to what the page or picture should do."""

from __future__ import annotations

import httpx
import openai
import pytest

from services.image_worker.jimeng import NO_CREDITS, Points, SessionPool, read_points, single_picture
from services.image_worker.jimeng import classify as classify_jimeng
from services.llm_worker.moonshot import classify as classify_llm
from services.llm_worker.moonshot import reached


def api_error(status: int, kind: str, message: str = "m") -> openai.APIStatusError:
    request = httpx.Request("POST", "http://x/v1/chat/completions")
    body = {"error": {"type": kind, "message": message}}
    response = httpx.Response(status, json=body, request=request)
    return openai.APIStatusError(message, response=response, body=body)


@pytest.mark.parametrize(
    "status, kind, code, retryable, wait",
    [
        (429, "rate_limit_reached_error", "llm_rate_limited", True, "llm_busy"),
        (429, "engine_overloaded_error", "llm_unavailable", True, "llm_busy"),
        (429, "exceeded_current_quota_error", "llm_quota", False, None),
        (401, "invalid_authentication_error", "llm_auth", False, None),
        (403, "permission_denied_error", "llm_auth", False, None),
        (404, "resource_not_found_error", "llm_model", False, None),
        (400, "content_filter", "llm_content_filter", False, None),
        (400, "invalid_request_error", "llm_failed", False, None),
        (500, "server_error", "llm_unavailable", True, "llm_unreachable"),
        (503, "server_error", "llm_unavailable", True, "llm_unreachable"),
    ],
)
def test_moonshot_errors(status: int, kind: str, code: str, retryable: bool, wait: str | None) -> None:
    """`wait`: a failure that passes by itself, waited out (and told to the reader)."""
    err = classify_llm(api_error(status, kind))
    assert (err.code, err.retryable, err.wait) == (code, retryable, wait)


def test_rate_limit_waits_as_long_as_it_says() -> None:
    err = classify_llm(
        api_error(429, "rate_limit_reached_error", "max RPM: 3, please try again after 7 seconds")
    )
    assert err.retry_after == 7.0


@pytest.mark.parametrize(
    "exc",
    [
        openai.APIConnectionError(request=httpx.Request("POST", "http://x")),
        openai.APITimeoutError(request=httpx.Request("POST", "http://x")),
        httpx.ReadTimeout("stalled"),  # a stream that went silent
        openai.APIError("The stream was interrupted", request=httpx.Request("POST", "http://x"), body=None),
    ],
)
def test_transport_failures_are_waited_out(exc: Exception) -> None:
    err = classify_llm(exc)
    assert err.retryable and err.code == "llm_unavailable" and err.wait == "llm_unreachable"


def test_a_call_that_never_connected_was_not_made() -> None:
    request = httpx.Request("POST", "http://x")
    refused = openai.APIConnectionError(request=request)
    refused.__cause__ = httpx.ConnectError("connection refused")
    assert not reached(refused)
    assert reached(openai.APITimeoutError(request=request))  # sent, then no answer
    assert reached(api_error(500, "server_error"))


@pytest.mark.parametrize(
    "body, code, retryable, policy",
    [
        ({"code": -2002, "message": "[登录失效]", "data": None}, "image_session_expired", False, False),
        ({"code": -2009, "message": "[积分不足]", "data": None}, "image_no_credits", False, False),
        (
            {"code": -2001, "message": "[请求失败]: x (错误码: 1006)", "data": None},
            "image_no_credits",
            False,
            False,
        ),
        (
            {"code": -2001, "message": "[请求失败]: shark not pass (错误码: 1019)", "data": None},
            "image_failed",
            True,
            False,
        ),
        ({"code": -2006, "message": "[内容违规]", "data": None}, "image_content_policy", False, True),
        (
            {"code": -2007, "message": "图像生成失败，状态码: 30，错误码: 2038", "data": None},
            "image_content_policy",
            False,
            True,
        ),
        ({"code": -2007, "message": "timed out with no results", "data": None}, "image_failed", True, False),
        (
            {"code": -1000, "message": "timeout of 45000ms exceeded", "data": None},
            "image_unavailable",
            True,
            False,
        ),
        (
            {"code": -2007, "message": "图片上传失败: getaddrinfo ENOTFOUND", "data": None},
            "image_unavailable",
            True,
            False,
        ),
        (
            {"code": -2000, "message": "Params body.prompt invalid", "data": None},
            "image_config",
            False,
            False,
        ),
        ({"created": 1, "data": []}, "image_failed", True, False),
        ("<html>502</html>", "image_failed", True, False),
    ],
)
def test_jimeng_http_200_errors(body: object, code: str, retryable: bool, policy: bool) -> None:
    err = classify_jimeng(body)
    assert err is not None
    assert (err.code, err.retryable, err.policy) == (code, retryable, policy)


def test_jimeng_success() -> None:
    assert classify_jimeng({"created": 1, "data": [{"url": "https://x/a.webp"}]}) is None


def test_dead_session_ids_are_skipped_not_picked_at_random() -> None:
    pool = SessionPool(["a", "b", "c"])
    pool.kill("b")
    picks = [pool.pick() for _ in range(6)]
    assert "b" not in picks and set(picks) == {"a", "c"}
    pool.kill("a")
    pool.kill("c")
    assert pool.pick() is None


def test_an_instant_minus_1000_is_a_configuration_error_naming_the_variable() -> None:
    body = {"code": -1000, "message": '国际版不支持模型 "jimeng-5.0"。支持的模型: jimeng-4.5', "data": None}
    instant = classify_jimeng(body, elapsed=0.05)
    assert instant is not None and (instant.code, instant.retryable) == ("image_config", False)
    assert "JIMENG_MODEL" in instant.message
    slow = classify_jimeng({"code": -1000, "message": "getaddrinfo ENOTFOUND x", "data": None}, elapsed=15.2)
    assert slow is not None and (slow.code, slow.retryable) == ("image_unavailable", True)
    assert "cannot reach jimeng" in slow.message


def test_ids_without_credits_are_set_aside_like_expired_ones_and_come_back() -> None:
    pool = SessionPool(["broke", "live"])
    pool.set_aside("broke", NO_CREDITS)
    assert {pool.pick() for _ in range(4)} == {"live"}
    assert "no credits" in pool.why_not() and "live" not in pool.why_not()
    pool.revive("broke")
    assert {pool.pick() for _ in range(4)} == {"broke", "live"}


def test_prompts_never_switch_jimeng_into_multi_picture_mode() -> None:
    prompt = "水彩绘本风格，连续的故事，4张：小兔子在月亮上"
    cleaned = single_picture(prompt)
    assert not any(word in cleaned for word in ("绘本", "故事", "连续", "4张"))
    assert "小兔子在月亮上" in cleaned


@pytest.mark.parametrize(
    "body, expected",
    [
        ([{"token": "a", "points": {"totalCredit": 12}}], Points(credits=12)),
        ([{"token": "a", "points": {"totalCredit": 0}}], Points(credits=0)),
        ({"code": -2002, "message": "[登录失效]", "data": None}, Points(expired=True)),
    ],
)
def test_credit_answers(body: object, expected: Points) -> None:
    assert read_points(body) == expected


def test_an_unreachable_upstream_says_nothing_about_the_ids() -> None:
    outage = read_points({"code": -1000, "message": "getaddrinfo ENOTFOUND", "data": None})
    assert outage.credits is None and not outage.expired and "ENOTFOUND" in outage.unreachable
