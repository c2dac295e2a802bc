"""What the doctor reads: each service's settings exactly as that service reads them.

A service's settings that do not validate become a ✗ row (the service would refuse
to start with the same lines); the checks that need them are skipped with that
reason. `--service` restricts everything to one service: inside its container, the
variables that matter are the ones present *there*.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from services.common.logs import register_secrets
from services.common.mediastore import MediaSettings
from services.common.settings import ServiceSettings, describe_errors, mask
from services.doctor.report import Row
from services.gateway.config import GatewaySettings
from services.image_worker.config import ImageSettings
from services.llm_worker.config import LlmSettings

ServiceName = Literal["gateway", "llm_worker", "image_worker"]
SERVICES: tuple[ServiceName, ...] = ("gateway", "llm_worker", "image_worker")

S = TypeVar("S", bound=ServiceSettings)


class DoctorSettings(BaseSettings):
    """Read leniently (nothing here can fail): where to find the running services, and
    the secrets to keep out of the output even when a service's settings are invalid."""

    model_config = ServiceSettings.model_config

    llm_ops_url: str | None = None
    image_ops_url: str | None = None
    jimeng_api_url: str | None = None
    moonshot_api_key: SecretStr | None = None
    jimeng_session_id: SecretStr | None = None
    ark_api_key: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    image_provider: str | None = None

    @property
    def image_check(self) -> str:
        """The image provider's row, named even when the image_worker's settings are invalid."""
        provider = self.image_provider or ("ark" if self.ark_api_key is not None else "jimeng")
        return "ark" if provider == "ark" else "jimeng-api"

    def secrets(self) -> list[str]:
        values = [self.moonshot_api_key, self.jimeng_session_id, self.ark_api_key, self.aws_secret_access_key]
        raw = [v.get_secret_value() for v in values if v is not None]
        return [part.strip() for value in raw for part in value.split(",") if part.strip()]


@dataclass
class Environment:
    services: tuple[ServiceName, ...]
    doctor: DoctorSettings
    common: ServiceSettings | None = None
    gateway: GatewaySettings | None = None
    llm: LlmSettings | None = None
    image: ImageSettings | None = None
    rows: list[Row] = field(default_factory=list)

    def has(self, service: ServiceName) -> bool:
        return service in self.services

    @property
    def llm_ops_url(self) -> str:
        port = getattr(self.llm, "llm_ops_port", 8011)
        return (self.doctor.llm_ops_url or f"http://127.0.0.1:{port}").rstrip("/")

    @property
    def image_ops_url(self) -> str:
        port = getattr(self.image, "image_ops_port", 8012)
        return (self.doctor.image_ops_url or f"http://127.0.0.1:{port}").rstrip("/")


def load(service: ServiceName | None) -> Environment:
    doctor = DoctorSettings()
    register_secrets(doctor.secrets())
    env = Environment(services=(service,) if service else SERVICES, doctor=doctor)
    try:
        env.common = ServiceSettings()
    except ValidationError:
        env.common = None  # every service's own row below says which variable is wrong
    if env.has("gateway"):
        env.gateway = _load(GatewaySettings, "gateway", env.rows, _describe_gateway)
    if env.has("llm_worker"):
        env.llm = _load(LlmSettings, "llm_worker", env.rows, _describe_llm)
    if env.has("image_worker"):
        env.image = _load(ImageSettings, "image_worker", env.rows, _describe_image)
    return env


def _load(cls: type[S], service: str, rows: list[Row], describe: Callable[[S], str]) -> S | None:
    check = f"config {service}"
    try:
        settings = cls()
    except ValidationError as exc:
        lines = describe_errors(exc, service=service)
        what = "; ".join(line.split(": configuration error: ", 1)[-1].split("; fix: ")[0] for line in lines)
        rows.append(Row.fail(check, f"{service} would refuse to start: {what}", *lines))
        return None
    rows.append(Row.ok(check, describe(settings)))
    return settings


def _describe_gateway(s: GatewaySettings) -> str:
    return (
        f"RABBITMQ_URL={redact_url(s.rabbitmq_url)}, DATABASE_URL={redact_url(s.database_url)}, "
        f"{_media(s)}, GATEWAY_PORT={s.gateway_port}"
    )


def _describe_llm(s: LlmSettings) -> str:
    proxy = redact_url(s.llm_proxy) if s.llm_proxy else "none"
    return (
        f"MOONSHOT_API_KEY {mask(s.moonshot_api_key.get_secret_value())}, "
        f"MOONSHOT_BASE_URL={s.moonshot_base_url}, MOONSHOT_MODEL={s.moonshot_model}, LLM_PROXY={proxy}"
        + (f", REDIS_URL={redact_url(s.redis_url)}" if s.redis_url else "")
    )


def _describe_image(s: ImageSettings) -> str:
    if s.provider == "ark":
        key = mask(s.ark_api_key.get_secret_value()) if s.ark_api_key is not None else "none"
        return (
            f"IMAGE_PROVIDER=ark, ARK_API_KEY {key}, ARK_BASE_URL={s.ark_base_url}, "
            f"ARK_IMAGE_MODEL={s.ark_image_model}, ARK_IMAGE_SIZE={s.ark_image_size}, {_media(s)}"
        )
    ids = ", ".join(mask(i) for i in s.session_ids)
    return (
        f"IMAGE_PROVIDER=jimeng, JIMENG_API_URL={s.jimeng_api_url}, "
        f"JIMENG_SESSION_ID: {len(s.session_ids)} id(s) ({ids}), {_media(s)}"
    )


def _media(s: MediaSettings) -> str:
    where = f"MEDIA_STORE={s.media_store}" if s.media_store else f"MEDIA_DIR={s.media_dir}"
    return where + (f", REDIS_URL={redact_url(s.redis_url)}" if s.redis_url else "")


# ------------------------------------------------------------------ small helpers


def redact_url(url: str) -> str:
    """The URL without its password: amqp://guest:***@host:5672/."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
