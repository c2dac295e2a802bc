"""python -m services.image_worker"""

from __future__ import annotations

import asyncio

from services.common.logs import setup_logging
from services.common.runtime import tune_gc
from services.common.settings import load_settings
from services.image_worker.app import create_app
from services.image_worker.config import ImageSettings


def main() -> None:
    settings = load_settings(ImageSettings, service="image_worker")
    setup_logging("image_worker", settings.log_level)
    tune_gc()
    asyncio.run(create_app(settings).run())


if __name__ == "__main__":
    main()
