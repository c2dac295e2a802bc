"""Downloads a drawn picture at once: every provider's result URLs expire within hours.

Whatever provider drew the picture, its bytes come through here before anything is
stored, so what is accepted as a picture is decided in one place:

- The URL comes from an upstream, so it is not trusted: its host is resolved here and
  the connection goes to the very address that was checked (a second lookup could
  answer differently: DNS rebinding). Loopback, private, link-local (cloud metadata),
  CGNAT, multicast, reserved and unspecified addresses are refused unless the
  operator allows them (IMAGE_FETCH_ALLOW); every redirect is checked the same way.
- The bytes are decoded as a PNG, JPEG or WebP with Pillow, within a side and a pixel
  cap, and encoded again, so what is stored and served is a picture and only a
  picture (no trailing payload, no metadata, no other format behind picture bytes).
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import socket
import warnings
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from services.image_worker.provider import ImageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}
# IPv6 prefixes that carry an IPv4 address inside (NAT64; 6to4 and mapped ones have
# their own accessors): the IPv4 address inside decides.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressPolicy:
    """Which addresses pictures may be downloaded from.

    By default only global unicast addresses; `allow` adds networks ("10.0.0.0/8",
    "127.0.0.1") and host names ("fake-jimeng") for setups that need them."""

    def __init__(self, allow: Sequence[str] = ()) -> None:
        self.networks: list[Network] = []
        self.hosts: set[str] = set()
        for item in (a.strip() for a in allow):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower().rstrip("."))

    def permits(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        inner = _embedded_ipv4(address)
        candidates = [address] if inner is None else [address, inner]
        if any(c in net for c in candidates for net in self.networks if c.version == net.version):
            return True
        return all(_public(c) for c in ([address] if inner is None else [inner]))


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _public(address: IPAddress) -> bool:
    # is_global leaves out loopback, private, link-local (169.254.169.254, the cloud
    # metadata service), CGNAT 100.64/10, unspecified and reserved ranges.
    return address.is_global and not address.is_multicast


class Downloader:
    def __init__(
        self,
        *,
        max_bytes: int,
        timeout: float = 60.0,
        allow: Sequence[str] = (),
        max_side: int = 8192,
        max_pixels: int = 40_000_000,
    ) -> None:
        self.max_bytes = max_bytes
        self.policy = AddressPolicy(allow)
        self.max_side, self.max_pixels = max_side, max_pixels
        # Redirects are followed by hand: each hop's address is checked first.
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False)

    async def close(self) -> None:
        await self.http.aclose()

    async def fetch(self, url: str) -> tuple[bytes, str]:
        """The picture's bytes, decoded and encoded again, and the extension they are stored under."""
        data = await self._download(url)
        return await asyncio.to_thread(reencode, data, max_side=self.max_side, max_pixels=self.max_pixels)

    async def _download(self, url: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            request = await self._pinned(url)
            try:
                resp = await self.http.send(request, stream=True)
            except httpx.TransportError as exc:
                raise ImageError(
                    "image_failed", f"downloading the picture failed: {type(exc).__name__}", True
                ) from None
            try:
                if resp.status_code in REDIRECTS and "location" in resp.headers:
                    url = urljoin(url, resp.headers["location"])
                    continue
                if resp.status_code != 200:
                    raise ImageError(
                        "image_failed", f"downloading the picture gave HTTP {resp.status_code}", True
                    )
                return await self._read(resp)
            finally:
                await resp.aclose()
        raise ImageError("image_failed", f"the picture's address redirected more than {MAX_REDIRECTS} times")

    async def _read(self, resp: httpx.Response) -> bytes:
        chunks, size = [], 0
        try:
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise ImageError("image_failed", "the picture is larger than IMAGE_MAX_BYTES")
                chunks.append(chunk)
        except httpx.TransportError as exc:
            raise ImageError(
                "image_failed", f"downloading the picture failed: {type(exc).__name__}", True
            ) from None
        return b"".join(chunks)

    async def _pinned(self, url: str) -> httpx.Request:
        """A request to the checked address itself, with the name kept for Host and TLS."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise ImageError("image_failed", "the picture's address is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._resolve(host, port)
        if not self.policy.permits(host, address):
            raise ImageError(
                "image_failed",
                f"the picture's address {host} is {address}, an internal address; pictures are "
                "downloaded only from public addresses. If this upstream is meant to be "
                "reached there, add it to IMAGE_FETCH_ALLOW",
            )
        target = httpx.URL(url).copy_with(host=str(address))
        headers = {"Host": parts.netloc.rpartition("@")[2]}
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return self.http.build_request("GET", target, headers=headers, extensions=extensions)

    async def _resolve(self, host: str, port: int) -> IPAddress:
        try:
            return ipaddress.ip_address(host)
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ImageError(
                "image_failed", f"the picture's host {host} does not resolve: {exc}", True
            ) from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        # Every address the name has must be allowed: one internal answer among public
        # ones is an attempt, and the one connected to is the one checked.
        for address in addresses:
            if not self.policy.permits(host, address):
                return address
        return addresses[0]


def reencode(data: bytes, *, max_side: int, max_pixels: int) -> tuple[bytes, str]:
    """Decode as PNG, JPEG or WebP within the caps and encode again; (bytes, extension)."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning, raised here as an error: a picture is refused,
            # never half-trusted.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as img:
                fmt = img.format or ""
                width, height = img.size
                if width > max_side or height > max_side or width * height > max_pixels:
                    raise ImageError(
                        "image_failed",
                        f"the picture is {width}×{height}, over the cap of {max_side} a side and "
                        f"{max_pixels} pixels (IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS)",
                    )
                img.load()
                out = io.BytesIO()
                if fmt == "JPEG":
                    img.convert("RGB").save(out, "JPEG", quality=92)
                elif fmt == "PNG":
                    img.save(out, "PNG")
                else:
                    img.save(out, "WEBP", quality=90)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("image_failed", f"the download is not a usable picture: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated and corrupt files this way.
        raise ImageError("image_failed", f"the download is not a usable picture: {exc}") from None
    return out.getvalue(), FORMATS[fmt]
