"""Volcengine Ark: is the key accepted and the model usable, without paying for a picture?

The check is the image_worker's own readiness probe (services.image_worker.ark): a
generation request without a prompt, which Ark authenticates, routes to the model and
then rejects for the missing prompt. Nothing is drawn, nothing is billed.
"""

from __future__ import annotations

import httpx

from services.common.settings import FIXES, mask
from services.doctor.report import Row
from services.image_worker.ark import CREDIT_FIX, KEY_FIX, MODEL_FIX, probe, verdict
from services.image_worker.config import ImageSettings

CHECK = "ark"


async def check_ark(settings: ImageSettings, *, wait: float) -> Row:
    assert settings.ark_api_key is not None  # asked only when the provider is ark, which requires it
    key = settings.ark_api_key.get_secret_value()
    url = f"{settings.ark_base_url}/images/generations"
    async with httpx.AsyncClient(
        timeout=wait, trust_env=False, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        status, body, transport = await probe(http, url, settings.ark_image_model)
    said = verdict(status, body, transport)
    what = f"ARK_API_KEY {mask(key)}, ARK_IMAGE_MODEL={settings.ark_image_model}"
    if said == "ok" or said.startswith("ok ("):
        return Row.ok(CHECK, f"{what}: the key is accepted and the model answers ({settings.ark_base_url})")
    if status is None:
        return Row.fail(
            CHECK,
            f"{settings.ark_base_url} {said}",
            f"ARK_BASE_URL: {FIXES['ARK_BASE_URL']}; the image_worker needs outbound HTTPS to it",
        )
    if said.startswith("the key was refused"):
        return Row.fail(CHECK, f"{what}: the key was refused ({status})", KEY_FIX)
    if said.startswith("the model was refused"):
        return Row.fail(CHECK, f"{what}: the model was refused ({status})", MODEL_FIX)
    if "overdue" in said or "quota" in said:
        return Row.fail(CHECK, f"{what}: {said.split(':')[0]}", CREDIT_FIX)
    return Row.fail(
        CHECK, f"{what}: {said}"[:300], "check ARK_IMAGE_MODEL and ARK_IMAGE_SIZE; see .env.example"
    )
