"""Each service refuses to start with one line naming the variable and the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.logs import JsonFormatter, register_secrets
from services.common.settings import describe_errors
from services.gateway.config import GatewaySettings
from services.image_worker.config import ImageSettings
from services.llm_worker.config import LlmSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for var in (
        "MOONSHOT_API_KEY",
        "JIMENG_SESSION_ID",
        "JIMENG_API_URL",
        "APP_ENV",
        "LLM_PROXY",
        "DATABASE_URL",
        "RABBITMQ_URL",
        "MOONSHOT_BASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(str(tmp_path))  # no .env from the developer's checkout


def lines(cls: type, service: str) -> list[str]:
    with pytest.raises(ValidationError) as info:
        cls()
    return describe_errors(info.value, service=service)


def test_missing_moonshot_key_names_variable_and_fix() -> None:
    (line,) = lines(LlmSettings, "llm_worker")
    assert line.startswith("llm_worker: configuration error: MOONSHOT_API_KEY is missing; fix:")


def test_placeholder_key_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOONSHOT_API_KEY", "changeme")
    (line,) = lines(LlmSettings, "llm_worker")
    assert "MOONSHOT_API_KEY is empty or a placeholder" in line
    monkeypatch.setenv("APP_ENV", "development")
    assert LlmSettings().moonshot_api_key.get_secret_value() == "changeme"


def test_image_worker_needs_its_session_id_in_its_own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIMENG_API_URL", "http://jimeng-api:5100")
    (line,) = lines(ImageSettings, "image_worker")
    assert "JIMENG_SESSION_ID is missing" in line and "image_worker's environment" in line
    monkeypatch.setenv("JIMENG_SESSION_ID", "abc123def456, ,x")
    (line,) = lines(ImageSettings, "image_worker")
    assert "empty item" in line


def test_bad_urls_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    monkeypatch.setenv("RABBITMQ_URL", "localhost:5672")
    found = lines(GatewaySettings, "gateway")
    assert any("DATABASE_URL must start with sqlite+aiosqlite://" in x for x in found)
    assert any("RABBITMQ_URL must look like amqp://" in x for x in found)


def test_proxy_scheme_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-realistic-key-1234")
    monkeypatch.setenv("LLM_PROXY", "socks4://10.0.0.1:1080")
    (line,) = lines(LlmSettings, "llm_worker")
    assert "LLM_PROXY" in line and "socks5://" in line


def test_secret_never_printed_in_refusals_or_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-verysecretvalue9876"
    monkeypatch.setenv("MOONSHOT_API_KEY", secret)
    monkeypatch.setenv("MOONSHOT_BASE_URL", "ftp://nowhere")
    (line,) = lines(LlmSettings, "llm_worker")
    assert secret not in line
    register_secrets([secret])
    import logging

    record = logging.LogRecord("x", logging.ERROR, "f", 1, f"call failed with key {secret}", None, None)
    out = JsonFormatter("llm_worker").format(record)
    assert secret not in out and "…9876" in out


@pytest.mark.parametrize(
    "message, secret",
    [
        ('1.2.3.4:5 - "WebSocket /ws/stories/a?token=Zk3_-pQ9xY0aBcDeFgHi&after=3"', "Zk3_-pQ9xY0aBcDeFgHi"),
        ("GET /read/Q2hhcmxpZS1zaGFyZS0x HTTP/1.1 404", "Q2hhcmxpZS1zaGFyZS0x"),
        ("GET /api/shared/Q2hhcmxpZS1zaGFyZS0x/export/html", "Q2hhcmxpZS1zaGFyZS0x"),
        ("headers {'authorization': 'Bearer s3cr3t-story-token-value'}", "s3cr3t-story-token-value"),
    ],
)
def test_story_tokens_and_share_ids_are_masked_in_every_line(message: str, secret: str) -> None:
    """Per-story secrets cannot be registered one by one; they are known by where they travel."""
    import logging

    record = logging.LogRecord("uvicorn.error", logging.INFO, "f", 1, message, None, None)
    out = JsonFormatter("gateway").format(record)
    assert secret not in out and f"…{secret[-4:]}" in out


def test_forwarded_allow_ips_must_be_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5, proxy.example")
    (line,) = lines(GatewaySettings, "gateway")
    assert "FORWARDED_ALLOW_IPS" in line and "'proxy.example' is not an IP address or CIDR" in line
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5,172.18.0.0/16")
    assert GatewaySettings().forwarded_allow_ips == "10.0.0.5,172.18.0.0/16"


def test_image_fetch_allow_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIMENG_API_URL", "http://jimeng-api:5100")
    monkeypatch.setenv("JIMENG_SESSION_ID", "a-real-looking-session-id-1")
    monkeypatch.setenv("IMAGE_FETCH_ALLOW", "127.0.0.1/32, fake-jimeng,")
    assert ImageSettings().image_fetch_allow == ["127.0.0.1/32", "fake-jimeng"]
    monkeypatch.delenv("IMAGE_FETCH_ALLOW")
    assert ImageSettings().image_fetch_allow == []
