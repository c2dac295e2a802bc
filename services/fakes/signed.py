"""Pictures behind signed, expiring URLs, the way the upstreams' object stores serve them.

Both image fakes hand out results as URLs that stop working after a while (a 403
with an S3-style XML body, docs/upstreams.md), forget the oldest pictures first (a
404, as if the store had dropped them) and count what was downloaded. They differ
only in the path and the names of the query parameters, so that is all they say.
Both also read reference pictures the same way (a data URI or a URL to download),
each answering a bad one in its upstream's own words.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

# A picture, or how to draw it on its first download (so four results cost one render).
Picture = bytes | Callable[[], bytes]


@dataclass(frozen=True)
class DrawingConfig:
    """What both picture fakes are told; each adds its own."""

    # Seconds a picture takes (the real ones: tens of seconds to minutes).
    image_seconds: float = 2.0
    # Seconds a result URL stays valid (jimeng's CDN: 2-3 hours; Ark's store: 24 hours).
    url_ttl: float = 10800.0
    # (mode, count) queued at start, as `--fault MODE[:COUNT]` does.
    faults: tuple[tuple[str, int], ...] = ()
    long_side: int = 640
    # Pictures kept for their URLs; the oldest are forgotten first (a 404, as if the
    # store had dropped them) so a long demo does not grow without bound.
    max_files: int = 2000


@dataclass(frozen=True)
class UrlStyle:
    prefix: str  # /files or /tos
    expires: str  # the query parameter that carries the expiry time
    signature: str  # and the one that carries the signature
    mismatch: str  # the store's own words for a wrong signature


class SignedFiles:
    def __init__(self, style: UrlStyle, *, ttl: float, max_files: int) -> None:
        self.style = style
        self.ttl = ttl
        self.max_files = max_files
        self.files: OrderedDict[str, Picture] = OrderedDict()
        self.served = 0
        # The next this many downloads answer 503, as a store having a bad minute.
        self.failing = 0
        self._secret = secrets.token_bytes(32)

    def __len__(self) -> int:
        return len(self.files)

    def keep(self, picture: Picture) -> str:
        """Stores a picture under a new random name and returns the name."""
        name = f"{secrets.token_hex(16)}.webp"
        self.files[name] = picture
        while len(self.files) > self.max_files:
            self.files.popitem(last=False)
        return name

    def url(self, request: Request, name: str) -> str:
        expires = math.ceil(time.time() + self.ttl)
        base = str(request.base_url).rstrip("/")
        s = self.style
        return f"{base}{s.prefix}/{name}?{s.expires}={expires}&{s.signature}={self._sign(name, expires)}"

    def add_route(self, app: FastAPI) -> None:
        app.add_api_route(f"{self.style.prefix}/{{name}}", self._get, methods=["GET", "HEAD"])

    async def _get(self, name: str, request: Request) -> Response:
        expires_arg = request.query_params.get(self.style.expires, "")
        given = request.query_params.get(self.style.signature, "")
        if not expires_arg.isdigit() or not hmac.compare_digest(given, self._sign(name, int(expires_arg))):
            return denied("SignatureDoesNotMatch", self.style.mismatch)
        if time.time() > int(expires_arg):
            return denied("AccessDenied", "Request has expired")
        if self.failing > 0:
            self.failing -= 1
            return denied("ServiceUnavailable", "Please reduce your request rate.", status=503)
        picture = self.files.get(name)
        if picture is None:
            return denied("NoSuchKey", "The specified key does not exist.", status=404)
        if not isinstance(picture, bytes):  # drawn on its first download
            picture = self.files[name] = await asyncio.to_thread(picture)
        if request.method == "GET":
            self.served += 1
        return Response(picture, media_type="image/webp")

    def _sign(self, name: str, expires: int) -> str:
        return hmac.new(self._secret, f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


class Unreadable(Exception):
    """A reference picture the fake could not get: each fake says why in its upstream's words."""

    def __init__(
        self, step: str, *, error: Exception | None = None, status: int = 0, reason: str = ""
    ) -> None:
        super().__init__(step)
        self.step = step  # "base64": the data URI does not decode; "download"; "status": HTTP error
        self.error, self.status, self.reason = error, status, reason


async def source_bytes(source: str, data_uri: re.Pattern[str], *, strict: bool) -> bytes:
    """A reference picture's bytes, from a data URI or by downloading its URL."""
    match = data_uri.match(source)
    if match:
        try:
            return base64.b64decode(match.group(1), validate=strict)
        except (binascii.Error, ValueError):
            raise Unreadable("base64") from None
    try:
        async with httpx.AsyncClient(timeout=15.0, trust_env=False) as client:
            response = await client.get(source)
    except httpx.HTTPError as exc:
        raise Unreadable("download", error=exc) from None
    if response.status_code >= 400:
        raise Unreadable("status", status=response.status_code, reason=response.reason_phrase)
    return response.content


def denied(code: str, message: str, *, status: int = 403) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def comma_set(value: str) -> frozenset[str]:
    """A command-line list `a,b,c` as a set, blanks dropped."""
    return frozenset(v.strip() for v in value.split(",") if v.strip())
