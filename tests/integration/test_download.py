"""Picture downloads: only from allowed addresses, only real pictures, re-encoded.

Real HTTP servers on loopback stand in for an internal service a hostile upstream
points at (127.0.0.2 is another loopback address Linux answers on).
"""

from __future__ import annotations

import io
import ipaddress
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from services.image_worker.download import AddressPolicy, Downloader
from services.image_worker.provider import ImageError


def picture(fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, fmt)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size (decoding it would need width×height pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@dataclass
class Server:
    host: str
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    made: list[tuple[Server, ThreadingHTTPServer]] = []
    for host in ("127.0.0.1", "127.0.0.2"):
        server = Server(host)

        class Handler(BaseHTTPRequestHandler):
            state = server

            def do_GET(self) -> None:
                self.state.hits.append(self.path)
                self.state.hosts.append(self.headers.get("Host", ""))
                status, headers, body = self.state.routes.get(self.path, (404, {}, b"nothing"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        http = ThreadingHTTPServer((host, 0), Handler)
        server.port = http.server_address[1]
        serve = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        serve.start()
        made.append((server, http))
    try:
        yield made[0][0], made[1][0]
    finally:
        for _, http in made:
            http.shutdown()
            http.server_close()


async def fetch(url: str, **kwargs: Any) -> tuple[bytes, str]:
    downloader = Downloader(max_bytes=5_000_000, timeout=5, **kwargs)
    try:
        return await downloader.fetch(url)
    finally:
        await downloader.close()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.100.100.200",  # a cloud's metadata, in CGNAT space
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "ff02::1",
    ],
)
def test_internal_addresses_are_refused_by_default(address: str) -> None:
    assert not AddressPolicy().permits("pictures.example", ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "203.0.114.7", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().permits("pictures.example", ipaddress.ip_address(address))


def test_the_allow_list_takes_networks_and_host_names() -> None:
    policy = AddressPolicy(["10.0.0.0/8", "fake-jimeng", " "])
    assert policy.permits("x", ipaddress.ip_address("10.9.9.9"))
    assert policy.permits("fake-jimeng", ipaddress.ip_address("172.18.0.5"))
    assert not policy.permits("x", ipaddress.ip_address("172.18.0.5"))


async def test_loopback_is_not_fetched_unless_allowed(servers: tuple[Server, Server]) -> None:
    inside, _ = servers
    inside.routes["/p.png"] = (200, {"Content-Type": "image/png"}, picture())
    with pytest.raises(ImageError) as refused:
        await fetch(inside.url("/p.png"))
    assert "IMAGE_FETCH_ALLOW" in refused.value.message and not refused.value.retryable
    assert inside.hits == []
    data, ext = await fetch(inside.url("/p.png"), allow=["127.0.0.1/32"])
    assert ext == ".png" and Image.open(io.BytesIO(data)).size == (64, 48)


async def test_a_name_is_checked_by_the_address_it_resolves_to(servers: tuple[Server, Server]) -> None:
    inside, _ = servers
    inside.routes["/p.png"] = (200, {}, picture())
    with pytest.raises(ImageError, match="internal address"):
        await fetch(f"http://localhost:{inside.port}/p.png")
    assert inside.hits == []


async def test_every_redirect_is_checked(servers: tuple[Server, Server]) -> None:
    allowed, internal = servers
    internal.routes["/secret"] = (200, {}, picture())
    allowed.routes["/p.png"] = (302, {"Location": internal.url("/secret")}, b"")
    with pytest.raises(ImageError, match="internal address"):
        await fetch(allowed.url("/p.png"), allow=["127.0.0.1/32"])
    assert allowed.hits == ["/p.png"] and internal.hits == []
    # A redirect to an allowed place is followed.
    allowed.routes["/moved.png"] = (200, {}, picture())
    allowed.routes["/p.png"] = (301, {"Location": "/moved.png"}, b"")
    _, ext = await fetch(allowed.url("/p.png"), allow=["127.0.0.1/32"])
    assert ext == ".png"


async def test_the_connection_goes_to_the_address_that_was_checked(
    servers: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a second lookup would say 127.0.0.2; none is made."""
    checked, rebound = servers
    checked.routes["/p.png"] = (200, {}, picture())
    rebound.routes["/p.png"] = (200, {}, picture())
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2"])

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "pictures.example":
            return real(next(answers), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    await fetch(f"http://pictures.example:{checked.port}/p.png", allow=["127.0.0.1/32"])
    assert checked.hits == ["/p.png"] and rebound.hits == []
    assert checked.hosts == [f"pictures.example:{checked.port}"]


@pytest.mark.parametrize(
    "body",
    [
        png_header_only(20_000, 20_000),  # 400 million pixels
        png_header_only(9_000, 100),  # wider than the side cap
        b"\x89PNG\r\n\x1a\n<html>an internal page</html>",  # picture bytes, then not a picture
        b"RIFF\x00\x00\x00\x00WEBPnot really",
        b"GIF89a" + b"\0" * 40,
    ],
)
async def test_what_is_not_a_picture_within_the_caps_is_refused(
    servers: tuple[Server, Server], body: bytes
) -> None:
    inside, _ = servers
    inside.routes["/p.png"] = (200, {"Content-Type": "image/png"}, body)
    with pytest.raises(ImageError) as refused:
        await fetch(inside.url("/p.png"), allow=["127.0.0.1/32"])
    assert refused.value.code == "image_failed"


@pytest.mark.parametrize("fmt, ext", [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp")])
async def test_pictures_are_encoded_again_without_what_trails_them(
    servers: tuple[Server, Server], fmt: str, ext: str
) -> None:
    inside, _ = servers
    inside.routes["/p"] = (200, {}, picture(fmt) + b"<script>secret internal data</script>")
    data, got = await fetch(inside.url("/p"), allow=["127.0.0.1"])
    assert got == ext
    assert b"secret internal data" not in data
    assert Image.open(io.BytesIO(data)).format == fmt
