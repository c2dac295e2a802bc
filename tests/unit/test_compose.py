"""docker-compose.yml cannot run here; this keeps it honest by reading it.

The incident this project was born from: the jimeng session id was set on the
container that ignores it, and never reached the service that sends it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.gateway.config import GatewaySettings
from services.image_worker.config import ImageSettings
from services.llm_worker.config import LlmSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def env_of(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: use the mapping form of environment"
    return {str(k): str(v) for k, v in env.items()}


def required(cls: type[BaseSettings]) -> set[str]:
    return {name.upper() for name, f in cls.model_fields.items() if f.is_required()}


@pytest.mark.parametrize(
    "service, settings, also",
    [
        ("gateway", GatewaySettings, {"RABBITMQ_URL", "DATABASE_URL", "MEDIA_DIR", "GATEWAY_PORT"}),
        ("llm_worker", LlmSettings, {"RABBITMQ_URL", "MOONSHOT_BASE_URL", "MOONSHOT_MODEL", "LLM_PROXY"}),
        (
            "image_worker",
            ImageSettings,
            {
                "RABBITMQ_URL",
                "IMAGE_PROVIDER",
                "ARK_API_KEY",
                "ARK_BASE_URL",
                "ARK_IMAGE_MODEL",
                "ARK_IMAGE_SIZE",
                "JIMENG_API_URL",
                "JIMENG_SESSION_ID",
                "JIMENG_MODEL",
                "MEDIA_DIR",
            },
        ),
    ],
)
def test_every_variable_reaches_the_service_that_needs_it(
    service: str, settings: type[BaseSettings], also: set[str]
) -> None:
    missing = (required(settings) | also) - set(env_of(service))
    assert not missing, f"{service} does not receive {sorted(missing)}"


def test_session_id_goes_to_the_image_worker_not_to_jimeng_api() -> None:
    assert "JIMENG_SESSION_ID" in env_of("image_worker")
    assert "JIMENG_SESSION_ID" not in env_of("jimeng-api")
    assert "MOONSHOT_API_KEY" not in env_of("gateway") | env_of("image_worker")


def test_required_secrets_fail_compose_loudly_when_unset() -> None:
    assert env_of("llm_worker")["MOONSHOT_API_KEY"].startswith("${MOONSHOT_API_KEY:?")
    # Which image secret is required depends on IMAGE_PROVIDER: the image_worker's own
    # settings refuse to start without it, and an empty value counts as unset there.
    for var in ("ARK_API_KEY", "JIMENG_SESSION_ID", "IMAGE_PROVIDER"):
        assert env_of("image_worker")[var] == f"${{{var}:-}}"
    assert ImageSettings.model_config.get("env_ignore_empty") is True


def test_jimeng_api_runs_only_for_the_jimeng_provider() -> None:
    assert SERVICES["jimeng-api"]["profiles"] == ["jimeng"]
    assert "fakes" in SERVICES["fake-ark"]["profiles"]


def test_in_network_addresses_are_not_taken_from_a_laptop_env() -> None:
    assert "@rabbitmq:5672/" in env_of("gateway")["RABBITMQ_URL"]
    assert "@postgres:5432/" in env_of("gateway")["DATABASE_URL"]
    assert env_of("gateway")["DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_workers_can_scale() -> None:
    for worker in ("llm_worker", "image_worker"):
        spec = SERVICES[worker]
        assert "container_name" not in spec and "ports" not in spec, f"{worker} cannot be scaled"


def test_pictures_are_shared_between_image_worker_and_gateway() -> None:
    media = env_of("gateway")["MEDIA_DIR"]
    assert env_of("image_worker")["MEDIA_DIR"] == media
    mounts = {s: {v.split(":")[1] for v in SERVICES[s]["volumes"]} for s in ("gateway", "image_worker")}
    assert any(media.startswith(m) for m in mounts["gateway"] & mounts["image_worker"])


def test_health_checks_ask_for_readiness_not_an_open_port() -> None:
    for service, port in (("gateway", "8000"), ("llm_worker", "8011"), ("image_worker", "8012")):
        assert f"127.0.0.1:{port}/readyz" in " ".join(SERVICES[service]["healthcheck"]["test"])
    assert env_of("llm_worker")["LLM_OPS_PORT"] == "8011"
    assert env_of("image_worker")["IMAGE_OPS_PORT"] == "8012"
    assert "/ping" in " ".join(SERVICES["jimeng-api"]["healthcheck"]["test"])
    assert "management" in SERVICES["rabbitmq"]["image"]


def test_env_example_documents_every_setting() -> None:
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    for cls in (GatewaySettings, LlmSettings, ImageSettings):
        names = {n.upper() for n in cls.model_fields}
        assert not names - documented, f"undocumented: {sorted(names - documented)}"


WORKERS: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "workers.compose.yml").read_text())["services"]


def test_an_extra_vm_runs_workers_only_sharing_the_bucket_and_the_budgets() -> None:
    assert set(WORKERS) == {"llm_worker", "image_worker", "jimeng-api"}
    for worker in ("llm_worker", "image_worker"):
        env = {str(k): str(v) for k, v in WORKERS[worker]["environment"].items()}
        # Every variable the main file gives this worker reaches it here too.
        assert not set(env_of(worker)) - set(env) - {"MEDIA_DIR"}, worker
        assert env["REDIS_URL"].startswith("${REDIS_URL:?"), "budgets shared, or no start"
        assert env["RABBITMQ_URL"].startswith("${RABBITMQ_URL:?"), "the main VM's broker, said loudly"
        assert "volumes" not in WORKERS[worker] and "ports" not in WORKERS[worker], "nothing on this VM"
    image = {str(k): str(v) for k, v in WORKERS["image_worker"]["environment"].items()}
    assert image["MEDIA_STORE"].startswith("${MEDIA_STORE:?") and "MEDIA_DIR" not in image


def test_the_shared_redis_refuses_to_start_without_a_password() -> None:
    redis = SERVICES["redis"]
    assert redis["profiles"] == ["fleet"]
    assert 'test -n "$$REDIS_PASSWORD"' in " ".join(redis["command"])
    for service in ("gateway", "llm_worker", "image_worker"):
        assert env_of(service)["REDIS_URL"] == "${REDIS_URL:-}"
    for service in ("gateway", "image_worker"):
        assert env_of(service)["MEDIA_STORE"] == "${MEDIA_STORE:-}"
