from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.infra import postgres_admin_url, rabbitmq_url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with rabbitmq_url() as url:
        yield url


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres_admin_url() as url:
        yield url
