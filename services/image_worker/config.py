"""image_worker settings: which provider draws (Volcengine Ark or jimeng-api) and with what.

IMAGE_PROVIDER picks the provider; left unset it is `ark` when ARK_API_KEY is set,
else `jimeng`. Only the chosen provider's variables are required, so an Ark
installation needs no jimeng-api address and no session cookie, and the reverse.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import NoDecode, SettingsConfigDict

from services.common.mediastore import MediaSettings
from services.common.settings import http_url, secret_ok

Provider = Literal["ark", "jimeng"]

# What Ark accepts as `size` (Seedream 4.x): a scale, or WIDTHxHEIGHT whose area lies
# between 1280x720 and 4096x4096 and whose sides are at most 16 times one another.
ARK_SCALES = {"1K": 1024, "2K": 2048, "4K": 4096}
ARK_MIN_PIXELS = 1280 * 720
ARK_MAX_PIXELS = 4096 * 4096
_WXH = re.compile(r"^(\d{2,5})[xX*](\d{2,5})$")


class ImageSettings(MediaSettings):
    # docker compose passes the variables of the provider not chosen as empty strings:
    # empty is unset, so an Ark installation is not refused for an empty session id.
    model_config = SettingsConfigDict(env_ignore_empty=True)

    # Declared before the provider's own variables: their checks read these two.
    image_provider: Provider | None = Field(
        default=None, description="ark or jimeng; unset: ark when ARK_API_KEY is set, else jimeng"
    )
    ark_api_key: SecretStr | None = Field(default=None, validate_default=True)
    ark_base_url: str = "https://ark.cn-beijing.volces.com/api/v3"
    ark_image_model: str = Field(default="doubao-seedream-4-0-250828", min_length=1)
    ark_image_size: str = "2K"
    # Ark answers in 10-60 s; a picture it finishes after we gave up is still billed,
    # and is never asked for again automatically (ark.py).
    ark_timeout: float = Field(default=180.0, gt=0)
    jimeng_api_url: str | None = Field(
        default=None, validate_default=True, description="base URL of jimeng-api, e.g. http://jimeng-api:5100"
    )
    # One or more jimeng `sessionid` values, comma-separated. jimeng-api itself reads
    # no session variable: we send them as the Bearer token of every request.
    jimeng_session_id: SecretStr | None = Field(default=None, validate_default=True)
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
    ops_host: str = "0.0.0.0"
    image_ops_port: int = Field(default=8012, ge=1, le=65535, description="/healthz /readyz /metrics")

    @field_validator("media_store")
    @classmethod
    def _claims_shared(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value.startswith("s3://") and not info.data.get("redis_url"):
            raise ValueError(
                "is an object store, which needs REDIS_URL too: image workers on every machine "
                "claim each picture there, so it is drawn once"
            )
        return value

    @field_validator("ark_api_key")
    @classmethod
    def _ark_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            if info.data.get("image_provider") == "ark":
                raise PydanticCustomError("missing", "Field required")
            return None
        if not secret_ok(value, env=info.data.get("app_env", "production")):
            raise ValueError("is empty or a placeholder")
        return value

    @field_validator("ark_base_url")
    @classmethod
    def _ark_url(cls, value: str) -> str:
        return http_url(value, like="https://ark.cn-beijing.volces.com/api/v3")

    @field_validator("ark_image_size")
    @classmethod
    def _ark_size(cls, value: str) -> str:
        size = value.strip().upper()
        if size in ARK_SCALES:
            return size
        match = _WXH.match(size)
        if match:
            width, height = int(match.group(1)), int(match.group(2))
            if ARK_MIN_PIXELS <= width * height <= ARK_MAX_PIXELS and max(width, height) <= 16 * min(
                width, height
            ):
                return f"{width}x{height}"
        raise ValueError("must be 1K, 2K, 4K or WIDTHxHEIGHT with an area between 1280x720 and 4096x4096")

    @field_validator("jimeng_api_url", "jimeng_session_id")
    @classmethod
    def _needed_by_jimeng(cls, value: object, info: ValidationInfo) -> object:
        # May be unset when another provider draws; with jimeng it is required.
        if value is None and _provider(info) == "jimeng":
            raise PydanticCustomError("missing", "Field required")
        return value

    @field_validator("jimeng_api_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return http_url(value, like="http://jimeng-api:5100")

    @field_validator("image_fetch_allow", mode="before")
    @classmethod
    def _allow(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("jimeng_session_id")
    @classmethod
    def _ids(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            return None
        env = info.data.get("app_env", "production")
        ids = [i.strip() for i in value.get_secret_value().split(",")]
        if not ids or not all(secret_ok(SecretStr(i), env=env) for i in ids):
            raise ValueError("is empty, has an empty item or is a placeholder value")
        return value

    @property
    def provider(self) -> Provider:
        if self.image_provider is not None:
            return self.image_provider
        return "ark" if self.ark_api_key is not None else "jimeng"

    @property
    def draw_timeout(self) -> float:
        """The longest one call to the chosen provider may take."""
        return self.ark_timeout if self.provider == "ark" else self.jimeng_timeout

    @property
    def session_ids(self) -> list[str]:
        if self.jimeng_session_id is None:
            return []
        return [i.strip() for i in self.jimeng_session_id.get_secret_value().split(",") if i.strip()]

    @property
    def claims_dir(self) -> Path:
        """Where picture claims are kept without Redis: in the media folder, under a
        name /media never serves."""
        root = Path(self.media_store[len("file:") :]) if self.media_store else self.media_dir
        return root / ".claims"

    def account(self) -> str:
        """What identifies the provider account a picture budget belongs to."""
        if self.provider == "ark":
            return f"{self.ark_base_url} {self.ark_api_key.get_secret_value() if self.ark_api_key else ''}"
        return f"{self.jimeng_api_url} {','.join(sorted(self.session_ids))}"

    def secrets(self) -> list[str]:
        """Every secret this service holds, for the log filter."""
        key = [self.ark_api_key.get_secret_value()] if self.ark_api_key is not None else []
        return [*key, *self.session_ids, *self.media_secrets()]


def _provider(info: ValidationInfo) -> Provider | None:
    """The provider chosen so far; None when IMAGE_PROVIDER or ARK_API_KEY itself was
    refused (its own line says so; the jimeng variables may not be what was meant)."""
    if "image_provider" not in info.data:
        return None  # IMAGE_PROVIDER itself was refused, on its own line
    chosen = info.data["image_provider"]
    if chosen is not None:
        return chosen
    if "ark_api_key" not in info.data:
        return None
    return "ark" if info.data["ark_api_key"] is not None else "jimeng"
