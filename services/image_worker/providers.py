"""Which provider draws (IMAGE_PROVIDER), and the jimeng session ids it starts with."""

from __future__ import annotations

import logging
import time

from services.common.amqp import Link
from services.common.control import environment_since, latest_sessions, sent_by
from services.common.logs import register_secrets
from services.common.settings import mask
from services.common.topology import Topology
from services.image_worker.ark import Ark
from services.image_worker.config import ImageSettings
from services.image_worker.jimeng import Jimeng, SessionPool
from services.image_worker.provider import Provider

log = logging.getLogger(__name__)


async def adopt_kept_sessions(link: Link, topology: Topology, sessions: SessionPool) -> None:
    """Session ids rotated by an operator while this worker was not running, unless the
    environment changed since: the operator's newest intent wins."""
    kept = await latest_sessions(link, topology)
    since = await environment_since(link, topology, sessions.ids)
    if kept is None:
        log.info("jimeng session ids from JIMENG_SESSION_ID: %s", ", ".join(mask(i) for i in sessions.ids))
        return
    register_secrets(kept.ids)
    sessions.applied_at = kept.at  # judged, applied or not: followed from here on
    if kept.at >= since:
        sessions.apply(kept.mode, kept.ids, source=sent_by(kept))
        return
    log.error(
        "the session ids kept by %s are older than this JIMENG_SESSION_ID (changed at %s) and are not "
        "used; using the environment's %s. To use other ids, run `jimeng-session set` again",
        sent_by(kept),
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(since)),
        ", ".join(mask(i) for i in sessions.ids),
    )
    sessions.source = f"JIMENG_SESSION_ID (changed after {sent_by(kept)})"


def make_provider(settings: ImageSettings, sessions: SessionPool) -> Provider:
    """The provider IMAGE_PROVIDER names."""
    if settings.provider == "ark":
        assert settings.ark_api_key is not None  # the settings refuse ark without a key
        return Ark(
            base_url=settings.ark_base_url,
            api_key=settings.ark_api_key.get_secret_value(),
            model=settings.ark_image_model,
            size=settings.ark_image_size,
            timeout=settings.ark_timeout,
        )
    assert settings.jimeng_api_url is not None  # the settings refuse jimeng without one
    return Jimeng(
        base_url=settings.jimeng_api_url,
        sessions=sessions,
        model=settings.jimeng_model,
        timeout=settings.jimeng_timeout,
        resolution=settings.jimeng_resolution,
        check_every=settings.jimeng_check_every,
    )
