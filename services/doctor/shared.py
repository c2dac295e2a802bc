"""What several machines share: the object store that keeps pictures, and Redis.

Both are checked as the services use them: the bucket with the services' own client
and a probe object written and deleted; Redis with a key written with a short expiry
(claims and budgets are written, so a read-only replica is not enough).
"""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.mediastore import FileStore, MediaSettings, open_store
from services.common.settings import FIXES
from services.doctor import store
from services.doctor.environment import redact_url
from services.doctor.report import Row

OBJECT_STORE = "object store"


async def check_media(settings: MediaSettings, *, service: str) -> Row:
    """The folder (as the service sees it) or the bucket that keeps pictures."""
    media = open_store(settings)
    if isinstance(media, FileStore):
        return await asyncio.to_thread(store.check_media, media.root, service=service)
    verdict = await asyncio.to_thread(media.check, write=True)
    if verdict == "ok":
        return Row.ok(OBJECT_STORE, f"{media.describe()}: write and delete ok")
    return Row.fail(
        OBJECT_STORE,
        verdict,
        f"MEDIA_STORE: {FIXES['MEDIA_STORE']}",
        f"S3_ENDPOINT_URL: {FIXES['S3_ENDPOINT_URL']}",
        f"AWS_ACCESS_KEY_ID: {FIXES['AWS_ACCESS_KEY_ID']}",
    )


def media_check_name(settings: MediaSettings) -> str:
    return OBJECT_STORE if settings.media_on_s3 else "media dir"


async def check_redis(url: str, *, wait: float) -> Row:
    shown = redact_url(url)
    client = Redis.from_url(url, socket_timeout=wait, socket_connect_timeout=wait)
    try:
        probe = f"doctor-probe-{uuid.uuid4().hex[:12]}"
        await client.set(probe, "1", px=1000)
        await client.delete(probe)
        version = (await client.info("server")).get("redis_version", "?")
    except RedisError as exc:
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        return Row.fail(
            "redis",
            f"{shown}: {why[:300]}",
            f"REDIS_URL: {FIXES['REDIS_URL']}; Redis must run and accept writes from every worker's machine",
        )
    finally:
        await client.aclose()
    return Row.ok("redis", f"{shown}: Redis {version}, write ok (budgets and picture claims are shared)")
