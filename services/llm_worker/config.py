"""llm_worker settings: the Moonshot account it writes with, validated at start."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from services.common.settings import ServiceSettings, secret_ok


class LlmSettings(ServiceSettings):
    moonshot_api_key: SecretStr = Field(description="Moonshot API key (sk-...)")
    moonshot_base_url: str = "https://api.moonshot.cn/v1"
    moonshot_model: str = Field(default="moonshot-v1-8k", min_length=1)
    moonshot_temperature: float = Field(default=0.8, ge=0.0, le=1.0)
    llm_proxy: str | None = Field(default=None, description="socks5://, socks5h:// or http:// proxy")
    # Pages written at once by one worker process (the consumer prefetch).
    llm_concurrency: int = Field(default=8, ge=1, le=1000)
    # This process's share of the Moonshot account's budget (see the account tier):
    # calls in flight at once, and calls per minute (0: no limit).
    moonshot_concurrency: int = Field(default=8, ge=1, le=1000)
    moonshot_rpm: int = Field(default=200, ge=0)
    llm_timeout: float = Field(default=90.0, gt=0, description="seconds for one whole attempt")
    llm_stall_timeout: float = Field(default=30.0, gt=0, description="seconds without a token")
    llm_max_attempts: int = Field(default=4, ge=1, le=10)
    # How long a rate limit or an outage is waited out before a page fails (from its
    # first failure); at least 60 s of trouble should never fail a page. 0: fail at once.
    moonshot_wait_out: float = Field(default=90.0, ge=0, le=3600, description="seconds")
    llm_max_tokens: int = Field(default=1500, ge=200)
    ops_host: str = "0.0.0.0"
    llm_ops_port: int = Field(default=8011, ge=1, le=65535, description="/healthz /readyz /metrics")

    @field_validator("moonshot_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL ending in /v1")
        return value.rstrip("/")

    @field_validator("llm_proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = urlsplit(value).scheme
        if scheme not in {"socks5", "socks5h", "http", "https"}:
            raise ValueError(f"scheme {scheme!r} is not supported")
        return value

    @field_validator("moonshot_api_key")
    @classmethod
    def _key(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if not secret_ok(value, env=info.data.get("app_env", "production")):
            raise ValueError("is empty or a placeholder value")
        return value
