"""JSON log lines that never carry a secret.

Every registered secret value is replaced by its masked form in every line, whatever
code logged it (our own, httpx, openai, faststream), so an API key or a session id in
an error message or a URL cannot leak through a log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar

from services.common.settings import mask

_secrets: set[str] = set()

# What the current request or message is about: added to every log line and carried
# to the next service in message headers, so one story can be followed end to end.
_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039 - never mutated
CONTEXT_KEYS = ("story_id", "request_id")


def bind(**values: str | None) -> None:
    """Add story_id / request_id to this task's log context."""
    _context.set({**_context.get(), **{k: v for k, v in values.items() if v}})


def bind_headers(headers: dict[str, object] | None) -> None:
    headers = headers or {}
    bind(**{k: str(headers[k]) for k in CONTEXT_KEYS if headers.get(k)})


def context_headers() -> dict[str, str]:
    return dict(_context.get())


def register_secrets(values: Iterable[str]) -> None:
    for value in values:
        if value and len(value) >= 4:
            _secrets.add(value)


# Per-story secrets cannot be registered one by one (every story has its own), so they
# are recognised by where they travel: a socket URL's ?token=, a bearer header, a share
# link. Uvicorn logs every socket's URL, and a story's token steers the story.
_CARRIERS = re.compile(
    r"(?P<lead>[?&](?:token|access_token)=|[Bb]earer\s+|/read/|/api/shared/)(?P<secret>[A-Za-z0-9_\-.~%]{4,})"
)


def _hide(match: re.Match[str]) -> str:
    return match.group("lead") + mask(match.group("secret"))


def scrub(text: str) -> str:
    text = _CARRIERS.sub(_hide, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, mask(secret))
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_context.get())
        for key in ("story_id", "page", "request_id", "attempt", "code", "usage"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(line, ensure_ascii=False, default=str))


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # FastStream installs its own coloured handlers; route it through ours instead.
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("faststream")]:
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Per-request lines from these are noise at INFO; their warnings still show.
    for noisy in ("httpx", "httpcore", "aiormq", "aio_pika", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
