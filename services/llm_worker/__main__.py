"""python -m services.llm_worker"""

from __future__ import annotations

import asyncio

from services.common.logs import setup_logging
from services.common.runtime import tune_gc
from services.common.settings import load_settings
from services.llm_worker.app import create_app
from services.llm_worker.config import LlmSettings


def main() -> None:
    settings = load_settings(LlmSettings, service="llm_worker")
    setup_logging("llm_worker", settings.log_level)
    tune_gc()
    asyncio.run(create_app(settings).run())


if __name__ == "__main__":
    main()
