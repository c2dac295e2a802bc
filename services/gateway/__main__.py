"""python -m services.gateway"""

from __future__ import annotations

import asyncio
import logging
import sys

import uvicorn

from services.common.logs import setup_logging
from services.common.runtime import tune_gc
from services.common.settings import load_settings
from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.guards import guarded_protocol
from services.gateway.store.repo import Store
from services.gateway.store.schema import SchemaUnknown


async def upgrade_store(url: str) -> None:
    """Migrate before serving: a store this gateway cannot use stops it here, in one line."""
    store = Store(url)
    try:
        await store.create_schema()
    finally:
        await store.close()


def main() -> None:
    settings = load_settings(GatewaySettings, service="gateway")
    setup_logging("gateway", settings.log_level)
    tune_gc()
    try:
        asyncio.run(upgrade_store(settings.database_url))
    except SchemaUnknown as exc:
        sys.exit(f"gateway: store error: {exc}")
    app = create_app(settings)
    logging.getLogger(__name__).info(
        "gateway listening on http://%s:%d", settings.gateway_host, settings.gateway_port
    )
    uvicorn.run(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        http=guarded_protocol(settings.header_timeout),
        # Only a configured proxy may say who the client is: the address decides the
        # per-client limits, and anyone can send X-Forwarded-For.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        ws_max_size=64 * 1024,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
