"""Downloads a drawn picture at once: every provider's result URLs expire within hours.

Whatever provider drew the picture, its bytes come through here before anything is
stored, so what is accepted as a picture is decided in one place.
"""

from __future__ import annotations

import httpx

from services.image_worker.provider import ImageError

SNIFF = {b"RIFF": ".webp", b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg"}


def extension(data: bytes, content_type: str) -> str:
    for magic, ext in SNIFF.items():
        if data.startswith(magic):
            return ext
    raise ImageError("image_failed", f"the download is not a picture ({content_type or 'no type'})", True)


class Downloader:
    def __init__(self, *, max_bytes: int, timeout: float = 60.0) -> None:
        self.max_bytes = max_bytes
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=True)

    async def close(self) -> None:
        await self.http.aclose()

    async def fetch(self, url: str) -> tuple[bytes, str]:
        """The picture's bytes and the extension they are stored under."""
        try:
            async with self.http.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise ImageError(
                        "image_failed", f"downloading the picture gave HTTP {resp.status_code}", True
                    )
                ctype = resp.headers.get("content-type", "").split(";")[0].strip()
                chunks, size = [], 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ImageError("image_failed", "the picture is larger than IMAGE_MAX_BYTES")
                    chunks.append(chunk)
        except httpx.TransportError as exc:
            raise ImageError(
                "image_failed", f"downloading the picture failed: {type(exc).__name__}", True
            ) from None
        data = b"".join(chunks)
        return data, extension(data, ctype)
