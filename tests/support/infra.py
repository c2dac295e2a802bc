"""Where the tests find RabbitMQ and PostgreSQL.

RABBITMQ_URL / TEST_POSTGRES_URL first, then a broker / server on its standard local
port (CI and the development machines run both); testcontainers only where a
Docker engine answers. Without either, the tests that
need them fail with a sentence saying how to provide them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def _local(port: int) -> bool:
    """A service on its standard port here (as on the development machines and CI)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def rabbitmq_url() -> Iterator[str]:
    url = os.environ.get("RABBITMQ_URL")
    if not url and _local(5672):
        url = "amqp://guest:guest@127.0.0.1:5672/"
    if url:
        yield url
        return
    if _docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as rabbit:
            params = rabbit.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/"
        return
    raise RuntimeError(
        "No RabbitMQ for the tests: set RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/ "
        "(e.g. after `rabbitmq-server -detached`) or run them where Docker works."
    )


@contextmanager
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url and _local(5432):
        url = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    if url:
        yield url
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="asyncpg") as pg:
            yield pg.get_connection_url()
        return
    raise RuntimeError(
        "No PostgreSQL for the store tests: set "
        "TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres."
    )


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@contextmanager
def redis_url() -> Iterator[str]:
    """Redis for fleet-wide budgets and claims: TEST_REDIS_URL, then the local port."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url and _local(6379):
        url = "redis://127.0.0.1:6379/0"
    if url:
        yield url
        return
    if _docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as redis:
            yield f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
        return
    raise RuntimeError(
        "No Redis for the tests: set TEST_REDIS_URL=redis://127.0.0.1:6379/0 "
        "(e.g. after `redis-server --daemonize yes`) or run them where Docker works."
    )
