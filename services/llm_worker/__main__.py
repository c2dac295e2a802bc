"""python -m services.llm_worker"""

from __future__ import annotations

from services.common.runtime import run_worker
from services.llm_worker.app import create_app
from services.llm_worker.config import LlmSettings

if __name__ == "__main__":
    run_worker("llm_worker", LlmSettings, create_app)
