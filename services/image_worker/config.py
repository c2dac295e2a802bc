"""image_worker settings: the jimeng-api service and session ids it draws with."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from services.common.settings import ServiceSettings, secret_ok


class ImageSettings(ServiceSettings):
    jimeng_api_url: str = Field(description="base URL of jimeng-api, e.g. http://jimeng-api:5100")
    # One or more jimeng `sessionid` values, comma-separated. jimeng-api itself reads
    # no session variable: we send them as the Bearer token of every request.
    jimeng_session_id: SecretStr
    jimeng_model: str = "jimeng-4.5"
    jimeng_ratio: Literal["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9"] = "4:3"
    jimeng_resolution: Literal["1k", "2k", "4k"] = "2k"
    # jimeng holds a request open 30 s to 5 min while it draws (tens of minutes in a long
    # queue) and goes on drawing, and charging, after its client leaves. A picture that
    # takes longer than this fails as image_timeout and is never asked for again by
    # itself. It must stay under RabbitMQ's consumer_timeout (30 min by default): past
    # that the broker takes the task back and hands it out again, which would pay twice.
    jimeng_timeout: float = Field(default=900.0, gt=0, le=1500.0)
    # How often the session ids are judged again (credits back, an id expired).
    jimeng_check_every: float = Field(default=60.0, ge=1.0)
    image_concurrency: int = Field(default=16, ge=1, le=1000)
    image_max_attempts: int = Field(default=3, ge=1, le=10)
    image_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # How long a page's picture waits for the story's character sheet before it is
    # drawn from its text alone (seconds).
    image_sheet_wait: float = Field(default=120.0, ge=0)
    media_dir: Path = Path("var/media")
    ops_host: str = "0.0.0.0"
    image_ops_port: int = Field(default=8012, ge=1, le=65535, description="/healthz /readyz /metrics")

    @field_validator("jimeng_api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL like http://jimeng-api:5100")
        return value.rstrip("/")

    @field_validator("jimeng_session_id")
    @classmethod
    def _ids(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        env = info.data.get("app_env", "production")
        ids = [i.strip() for i in value.get_secret_value().split(",")]
        if not ids or not all(secret_ok(SecretStr(i), env=env) for i in ids):
            raise ValueError("is empty, has an empty item or is a placeholder value")
        return value

    @property
    def session_ids(self) -> list[str]:
        return [i.strip() for i in self.jimeng_session_id.get_secret_value().split(",") if i.strip()]
