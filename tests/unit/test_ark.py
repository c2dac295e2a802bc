"""Volcengine Ark: every documented error maps to what the picture should do; the settings
choose the provider and refuse what cannot work, in one line naming the variable."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.common.errors import MESSAGES, reader_error
from services.common.logs import register_secrets, scrub
from services.common.settings import describe_errors
from services.image_worker.ark import classify, picture_url, size_for, verdict
from services.image_worker.config import ImageSettings
from services.image_worker.provider import ImageError


def ark_error(code: str, param: str = "", kind: str = "BadRequest") -> dict[str, Any]:
    return {
        "error": {"code": code, "message": f"{code} happened. Request id: 0217", "param": param, "type": kind}
    }


@pytest.mark.parametrize(
    "status, code, param, ours, retryable, policy, names",
    [
        (400, "InputTextRiskDetection", "", "image_content_policy", False, True, ""),
        (400, "InputImageRiskDetection", "", "image_content_policy", False, True, ""),
        (400, "OutputImageRiskDetection", "", "image_content_policy", False, True, ""),
        (400, "InputTextSensitiveContentDetected", "", "image_content_policy", False, True, ""),
        (400, "SensitiveContentDetected.Violence", "", "image_content_policy", False, True, ""),
        (400, "ContentSecurityDetectionError", "", "image_failed", True, False, ""),
        (401, "AuthenticationError", "", "image_auth", False, False, "ARK_API_KEY"),
        (403, "AccountOverdueError", "", "image_no_credits", False, False, "top up"),
        (429, "QuotaExceeded", "", "image_no_credits", False, False, "quota"),
        (429, "SetLimitExceeded", "", "image_no_credits", False, False, "quota"),
        (404, "ModelNotOpen", "", "image_config", False, False, "ARK_IMAGE_MODEL"),
        (404, "InvalidEndpointOrModel.NotFound", "", "image_config", False, False, "ARK_IMAGE_MODEL"),
        (403, "AccessDenied", "", "image_config", False, False, "ARK_IMAGE_MODEL"),
        (400, "InvalidEndpoint.ClosedEndpoint", "", "image_failed", True, False, "ARK_IMAGE_MODEL"),
        (429, "RateLimitExceeded.EndpointRPMExceeded", "", "image_failed", True, False, "rate limit"),
        (429, "ServerOverloaded", "", "image_failed", True, False, "rate limit"),
        (500, "InternalServiceError", "", "image_failed", True, False, ""),
        (503, "ServiceUnavailable", "", "image_failed", True, False, ""),
        (400, "InvalidParameter", "size", "image_config", False, False, "ARK_IMAGE_SIZE"),
        (400, "MissingParameter", "model", "image_config", False, False, "ARK_IMAGE_MODEL"),
        # The sheet refused: the last attempt draws from the page's text instead.
        (400, "InvalidParameter.OversizedImage", "image", "image_failed", True, False, "character sheet"),
    ],
)
def test_every_documented_ark_error(
    status: int, code: str, param: str, ours: str, retryable: bool, policy: bool, names: str
) -> None:
    err = classify(status, ark_error(code, param))
    assert (err.code, err.retryable, err.policy) == (ours, retryable, policy), err
    assert names in err.message and code in err.message
    assert err.code in MESSAGES, "the reader gets a sentence for every code"


def test_a_proxy_s_page_instead_of_json_is_still_classified() -> None:
    assert classify(502, None).retryable
    assert classify(401, "<html>").code == "image_auth"


def test_a_200_without_a_picture() -> None:
    assert picture_url({"data": [{"url": "https://x/y.webp"}]}) == "https://x/y.webp"
    empty = picture_url({"data": []})
    assert isinstance(empty, ImageError) and empty.retryable
    refused = picture_url({"data": [ark_error("OutputImageRiskDetection")]})
    assert isinstance(refused, ImageError) and refused.policy


def test_new_reader_codes_have_their_own_sentence() -> None:
    assert "key" in reader_error("image_auth").message
    assert "set up" in reader_error("image_config").message


@pytest.mark.parametrize(
    "ratio, scale, size",
    [
        ("4:3", "2K", "2352x1760"),
        ("1:1", "2K", "2048x2048"),
        ("16:9", "1K", "1360x768"),
        ("3:4", "4K", "3536x4720"),
        ("4:3", "2048x1536", "2048x1536"),
        ("16:9", "1280x720", "1280x720"),
    ],
)
def test_the_page_shape_at_the_configured_scale(ratio: str, scale: str, size: str) -> None:
    assert size_for(ratio, scale) == size
    width, height = map(int, size.split("x"))
    assert 1280 * 720 <= width * height <= 4096 * 4096


def test_sizes_of_every_ratio_and_scale_are_ones_ark_accepts() -> None:
    for ratio in ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9"):
        for scale in ("1K", "2K", "4K", "1280x720", "4096x4096"):
            width, height = map(int, size_for(ratio, scale).split("x"))
            assert 1280 * 720 <= width * height <= 4096 * 4096, (ratio, scale)
            assert width % 16 == 0 and height % 16 == 0


@pytest.mark.parametrize(
    "status, body, starts",
    [
        (400, ark_error("MissingParameter", "prompt"), "ok"),
        (401, ark_error("AuthenticationError", kind="Unauthorized"), "the key was refused (401)"),
        (404, ark_error("ModelNotOpen", kind="NotFound"), "the model was refused (404)"),
        (403, ark_error("AccountOverdueError", kind="Forbidden"), "the Volcengine account is overdue"),
        (429, ark_error("RateLimitExceeded.EndpointRPMExceeded"), "ok (rate limited"),
        (503, ark_error("ServiceUnavailable"), "Ark answers HTTP 503"),
        (None, None, "unreachable at ARK_BASE_URL"),
    ],
)
def test_readiness_says_what_is_wrong(status: int | None, body: Any, starts: str) -> None:
    line = verdict(status, body, "ConnectError")
    assert line.startswith(starts), line


# ------------------------------------------------------------------ settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for var in (
        "APP_ENV",
        "IMAGE_PROVIDER",
        "ARK_API_KEY",
        "ARK_BASE_URL",
        "ARK_IMAGE_MODEL",
        "ARK_IMAGE_SIZE",
        "ARK_TIMEOUT",
        "JIMENG_API_URL",
        "JIMENG_SESSION_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(str(tmp_path))  # no .env from the developer's checkout


def refusals() -> list[str]:
    with pytest.raises(ValidationError) as info:
        ImageSettings()
    return describe_errors(info.value, service="image_worker")


def test_a_key_chooses_ark_and_needs_nothing_of_jimeng(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARK_API_KEY", "ak-0123456789abcdef")
    settings = ImageSettings()
    assert settings.provider == "ark" and settings.ark_image_size == "2K"
    assert settings.ark_base_url == "https://ark.cn-beijing.volces.com/api/v3"
    assert settings.ark_image_model.startswith("doubao-seedream-4")
    assert settings.secrets() == ["ak-0123456789abcdef"]


def test_without_a_key_jimeng_is_needed_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = refusals()
    assert [line.split(" is missing")[0].rsplit(" ", 1)[1] for line in lines] == [
        "JIMENG_API_URL",
        "JIMENG_SESSION_ID",
    ]
    assert "ARK_API_KEY" in lines[1], "the fix mentions the other provider"
    monkeypatch.setenv("JIMENG_API_URL", "http://jimeng-api:5100")
    monkeypatch.setenv("JIMENG_SESSION_ID", "abcdef123456")
    assert ImageSettings().provider == "jimeng"


def test_ark_chosen_without_a_key_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_PROVIDER", "ark")
    (line,) = refusals()
    assert line.startswith("image_worker: configuration error: ARK_API_KEY is missing; fix: set ARK_API_KEY")


def test_a_placeholder_key_is_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARK_API_KEY", "your-key")
    (line,) = refusals()
    assert "ARK_API_KEY is empty or a placeholder" in line
    monkeypatch.setenv("APP_ENV", "development")
    assert ImageSettings().provider == "ark"


def test_jimeng_chosen_with_a_key_needs_jimeng(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARK_API_KEY", "ak-0123456789abcdef")
    monkeypatch.setenv("IMAGE_PROVIDER", "jimeng")
    assert len(refusals()) == 2


@pytest.mark.parametrize(
    "var, value, says",
    [
        ("ARK_IMAGE_SIZE", "640x480", "ARK_IMAGE_SIZE must be 1K, 2K, 4K or WIDTHxHEIGHT"),
        ("ARK_IMAGE_SIZE", "3K", "ARK_IMAGE_SIZE must be"),
        ("ARK_BASE_URL", "ark.cn-beijing.volces.com", "ARK_BASE_URL must be an http(s) URL"),
        ("ARK_TIMEOUT", "0", "ARK_TIMEOUT"),
        ("IMAGE_PROVIDER", "dalle", "IMAGE_PROVIDER"),
    ],
)
def test_one_clear_line_for_each_bad_setting(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, says: str
) -> None:
    monkeypatch.setenv("ARK_API_KEY", "ak-0123456789abcdef")
    monkeypatch.setenv(var, value)
    (line,) = refusals()
    assert says in line and "fix:" in line and "ak-0123456789abcdef" not in line


def test_an_explicit_size_is_kept_and_the_key_is_masked_in_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARK_API_KEY", "ak-secret-value-4242")
    monkeypatch.setenv("ARK_IMAGE_SIZE", "2048x1536")
    settings = ImageSettings()
    assert settings.ark_image_size == "2048x1536"
    register_secrets(settings.secrets())
    assert scrub("calling with ak-secret-value-4242") == "calling with …4242"
