from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.devstack.procs import Stack
from tests.support.infra import postgres_admin_url, rabbitmq_url, redis_url
from tests.support.s3 import S3, s3_server
from tests.support.stack import running_stack


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with rabbitmq_url() as url:
        yield url


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres_admin_url() as url:
        yield url


@pytest.fixture(scope="session")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Gateway, both workers and both fakes as processes on the real broker (shared)."""
    with running_stack(amqp_url, tmp_path_factory.mktemp("stack"), name="shared") as running:
        yield running


@pytest.fixture(scope="session")
def redis() -> Iterator[str]:
    with redis_url() as url:
        yield url


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """A real S3 API server (moto) with a bucket of its own."""
    with s3_server() as server:
        yield server
