"""image_worker settings: the jimeng-api service and session ids it draws with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from services.common.settings import ServiceSettings, secret_ok


class ImageSettings(ServiceSettings):
    jimeng_api_url: str = Field(description="base URL of jimeng-api, e.g. http://jimeng-api:5100")
    # One or more jimeng `sessionid` values, comma-separated. jimeng-api itself reads
    # no session variable: we send them as the Bearer token of every request.
    jimeng_session_id: SecretStr
    jimeng_model: str = "jimeng-4.5"
    jimeng_ratio: Literal["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9"] = "4:3"
    jimeng_resolution: Literal["1k", "2k", "4k"] = "2k"
    # jimeng holds a request open 30 s to 5 min while it draws.
    jimeng_timeout: float = Field(default=360.0, gt=0)
    image_concurrency: int = Field(default=16, ge=1, le=1000)
    image_max_attempts: int = Field(default=3, ge=1, le=10)
    image_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # A picture wider or taller than this, or with more pixels, is refused before it
    # is decoded in full (jimeng's 4k at 21:9 is about 6000×2600).
    image_max_side: int = Field(default=8192, ge=64, le=65535)
    image_max_pixels: int = Field(default=40_000_000, ge=4096, le=178_000_000)
    # Addresses pictures may be downloaded from besides public ones: comma-separated
    # networks (127.0.0.1/32, 10.0.0.0/8) or host names (fake-jimeng). Empty: public only.
    image_fetch_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
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

    @field_validator("image_fetch_allow", mode="before")
    @classmethod
    def _allow(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

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
