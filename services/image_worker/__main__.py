"""python -m services.image_worker"""

from __future__ import annotations

from services.common.runtime import run_worker
from services.image_worker.app import create_app
from services.image_worker.config import ImageSettings

if __name__ == "__main__":
    run_worker("image_worker", ImageSettings, create_app)
