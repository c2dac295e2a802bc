from __future__ import annotations

from services.gateway.stories import PerClientLimit


def test_each_client_gets_its_own_minute() -> None:
    limit = PerClientLimit(3)
    assert [limit.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b")


def test_memory_stays_bounded_under_many_addresses() -> None:
    limit = PerClientLimit(1, clients=100)
    for i in range(1000):
        limit.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(limit._seen) == 100
