"""Settings shared by every service, and the one-line refusal to start.

Each service has its own settings class (its `config.py`) built on `ServiceSettings`.
`load_settings` turns a validation error into one line per variable that names the
variable, what is wrong and how to fix it, then exits: a service never starts half
configured, and a secret's value is never printed.
"""

from __future__ import annotations

import sys
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EX_CONFIG = 78  # sysexits.h: configuration error

PLACEHOLDERS = {"", "changeme", "change-me", "xxx", "your-key", "sk-xxx", "todo", "placeholder"}


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    app_env: Literal["development", "production", "test"] = Field(
        default="production",
        description="development allows the offline fakes' placeholder keys",
    )
    rabbitmq_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="amqp://user:password@host:5672/vhost of the broker",
    )
    rabbitmq_prefix: str = Field(
        default="storybook",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="prefix of every exchange and queue name",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Shared by every worker on every machine: fleet-wide upstream budgets and
    # picture claims. Unset: each process keeps its own budget (one machine).
    redis_url: str | None = Field(default=None, description="redis://host:6379/0")

    @field_validator("rabbitmq_url")
    @classmethod
    def _amqp_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"amqp", "amqps"} or not parts.hostname:
            raise ValueError("must look like amqp://user:password@host:5672/")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must look like redis://host:6379/0")
        return value.strip()


def http_url(value: str, *, like: str) -> str:
    """An http(s) URL with a host, without its trailing slash; else the error says `like`."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"must be an http(s) URL like {like}")
    return value.rstrip("/")


def secret_ok(value: SecretStr | None, *, env: str) -> bool:
    """A secret is usable if present and, outside development, not a placeholder."""
    if value is None:
        return False
    raw = value.get_secret_value().strip()
    if not raw:
        return False
    return env == "development" or raw.lower() not in PLACEHOLDERS


def mask(secret: str) -> str:
    """Show at most the last four characters of a secret."""
    return f"…{secret[-4:]}" if len(secret) > 8 else "…"


S = TypeVar("S", bound=BaseSettings)

# What to do about each variable, said once, used in every refusal.
FIXES: dict[str, str] = {
    "RABBITMQ_URL": "set RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/ (or your broker)",
    "RABBITMQ_PREFIX": "use lowercase letters, digits, '.', '_' or '-'",
    "DATABASE_URL": "use sqlite+aiosqlite:///path/stories.db or postgresql+asyncpg://user@host/db",
    "MEDIA_DIR": "point MEDIA_DIR at a writable directory shared by gateway and image_worker",
    "MOONSHOT_API_KEY": "set MOONSHOT_API_KEY to your key from platform.moonshot.cn "
    "(or leave it unset and use `make run` for the offline fake)",
    "MOONSHOT_BASE_URL": "use https://api.moonshot.cn/v1 (China) or https://api.moonshot.ai/v1",
    "LLM_PROXY": "use socks5://host:port, socks5h://host:port or http://host:port",
    "IMAGE_PROVIDER": "set IMAGE_PROVIDER=ark (Volcengine Ark, an API key) or IMAGE_PROVIDER=jimeng "
    "(jimeng-api, session cookies), or leave it unset: ark when ARK_API_KEY is set",
    "ARK_API_KEY": "set ARK_API_KEY to an API key from the Ark console (console.volcengine.com/ark, "
    "API Key management) in the image_worker's environment, or set IMAGE_PROVIDER=jimeng",
    "ARK_BASE_URL": "use https://ark.cn-beijing.volces.com/api/v3 (the default)",
    "ARK_IMAGE_MODEL": "use a Seedream model id your account has activated, e.g. "
    "doubao-seedream-4-0-250828, or an endpoint id ep-...",
    "ARK_IMAGE_SIZE": "use 1K, 2K (the default) or 4K, or WIDTHxHEIGHT such as 2048x1536",
    "ARK_TIMEOUT": "use a number of seconds, e.g. 180",
    "JIMENG_API_URL": "set JIMENG_API_URL to the jimeng-api service, e.g. http://jimeng-api:5100",
    "JIMENG_SESSION_ID": "set JIMENG_SESSION_ID to one or more sessionid cookies from jimeng.jianying.com, "
    "comma-separated, in the image_worker's environment (or set ARK_API_KEY to draw with Volcengine Ark)",
    "GATEWAY_PORT": "use a free TCP port number, e.g. 8000",
    "REDIS_URL": "set REDIS_URL=redis://host:6379/0 (the Redis every worker shares), or leave it unset "
    "on one machine",
    "MEDIA_STORE": "use file:/path/to/media or s3://bucket/prefix (with S3_ENDPOINT_URL for OSS or MinIO)",
    "S3_ENDPOINT_URL": "use the S3 API address of your object storage, e.g. "
    "https://oss-cn-hangzhou.aliyuncs.com (unset for AWS S3)",
    "S3_ADDRESSING_STYLE": "use auto, path (MinIO) or virtual (Alibaba OSS)",
    "AWS_ACCESS_KEY_ID": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a key that may read and "
    "write the bucket (an OSS AccessKey works)",
    "AWS_SECRET_ACCESS_KEY": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY together",
}


def load_settings(cls: type[S], *, service: str) -> S:
    try:
        return cls()
    except ValidationError as exc:
        for line in describe_errors(exc, service=service):
            print(line, file=sys.stderr)
        raise SystemExit(EX_CONFIG) from None


def describe_errors(exc: ValidationError, *, service: str) -> list[str]:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        var = str(err["loc"][0]).upper() if err["loc"] else "?"
        why = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            why = "is missing"
        fix = FIXES.get(var, "see .env.example")
        lines.append(f"{service}: configuration error: {var} {why}; fix: {fix}")
    return lines
