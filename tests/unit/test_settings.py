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
