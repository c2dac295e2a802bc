"""Gateway settings: what it needs to serve readers, validated at start."""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, field_validator

from services.common.mediastore import MediaSettings


class GatewaySettings(MediaSettings):
    gateway_host: str = "0.0.0.0"
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    database_url: str = Field(default="sqlite+aiosqlite:///var/stories.db")
    story_pages: int = Field(default=6, ge=2, le=30, description="pages in a story")
    default_style: str = "watercolor"
    max_body_bytes: int = Field(default=16_384, ge=1024)
    # The child's own hero picture on a new story (decoded size, and pixels before it is
    # scaled down): the only body allowed past max_body_bytes.
    hero_max_bytes: int = Field(default=4_000_000, ge=10_000, le=20_000_000)
    hero_max_pixels: int = Field(default=40_000_000, ge=10_000, le=178_000_000)
    # New stories are refused (503 + Retry-After) while more pages than this wait to
    # be written: better a clear "try again" than a story that takes hours.
    max_queue_depth: int = Field(default=200, ge=1)
    # New stories per client address per minute, per gateway process.
    create_per_minute: int = Field(default=10, ge=1)
    # Web pages allowed to open a reader socket besides the gateway's own origin,
    # comma-separated (e.g. https://stories.example.com); "*" allows any.
    allowed_origins: str = ""
    # Bearer token for the operator's endpoints (/api/admin/...); unset: they are off.
    admin_token: SecretStr | None = None
    # Where a replica's socket buffers more than this many events for a slow reader,
    # the reader is disconnected and resumes with `after` instead of eating memory.
    ws_send_buffer: int = Field(default=1000, ge=10)
    # Open reader sockets per story and per client address, on each gateway process.
    ws_per_story: int = Field(default=20, ge=1)
    ws_per_client: int = Field(default=60, ge=1)
    # Addresses of the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are
    # believed (comma-separated IPs or CIDRs, "*" for any). Empty: the peer's own
    # address is the client's, whatever headers it sends.
    forwarded_allow_ips: str = ""
    # Seconds a client has to send a request's headers before its connection is closed.
    header_timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        # Empty means off (compose passes an empty string when it is not set).
        if value is None or not value.get_secret_value().strip():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("is shorter than 16 characters; use a long random value")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _forwarded(cls, value: str) -> str:
        for item in (i.strip() for i in value.split(",")):
            if not item or item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or CIDR; "
                    "list the proxies' addresses, e.g. 10.0.0.5,172.18.0.0/16"
                ) from None
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value
