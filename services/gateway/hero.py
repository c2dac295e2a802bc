"""The child's own hero: a drawing or a photo of a toy that the characters' picture is
drawn from (the image worker takes it as the character sheet's reference).

What a parent uploads is never kept or served as sent. It is decoded by Pillow within a
size and a pixel cap, turned the right way up, flattened onto white paper, scaled to at
most HERO_SIDE pixels a side and encoded again as a JPEG under the story's own key in the
media store (media.hero_key), so it goes with the story's folder. /media never serves it.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from services.common import media
from services.common.mediastore import MediaStore

HERO_SIDE = 1024
FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
# "data:image/png;base64,...." as a browser's FileReader or canvas writes it.
DATA_URL = re.compile(r"data:image/(?:png|jpeg|jpg|webp|gif);base64,", re.IGNORECASE)
TRY = "Send a PNG, JPEG or WebP photo or drawing"


class BadHero(ValueError):
    """The hero picture cannot be used; the message says why and what to send."""


def decode_data_url(value: str, *, max_bytes: int) -> bytes:
    """The bytes of a `data:image/...;base64,` URL, within `max_bytes`."""
    head = DATA_URL.match(value)
    if head is None:
        raise BadHero(f'hero_picture must be a "data:image/...;base64," URL of a picture. {TRY}.')
    body = value[head.end() :]
    if len(body) * 3 // 4 > max_bytes:
        raise BadHero(_too_big(len(body) * 3 // 4, max_bytes))
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise BadHero(f"hero_picture is not valid base64. {TRY}.") from None


def _too_big(size: int, max_bytes: int) -> str:
    mb, cap = size / 1e6, max_bytes / 1e6
    return f"The hero picture is {mb:.1f} MB and at most {cap:.1f} MB fit. Send a smaller photo."


def normalise(data: bytes, *, max_bytes: int, max_pixels: int) -> bytes:
    """Decode within the caps and encode again as a JPEG of at most HERO_SIDE a side."""
    if len(data) > max_bytes:
        raise BadHero(_too_big(len(data), max_bytes))
    try:
        with warnings.catch_warnings():
            # Pillow's bomb warning as an error: such a file is refused, never half-read.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise BadHero(
                        f"The hero picture is {width}×{height} pixels, more than the {max_pixels:,} "
                        "that fit. Send a smaller photo."
                    )
                img.draft("RGB", (HERO_SIDE, HERO_SIDE))  # a big JPEG is decoded at a fraction
                picture = ImageOps.exif_transpose(img)
                picture.thumbnail((HERO_SIDE, HERO_SIDE))
                out = io.BytesIO()
                _on_paper(picture).save(out, "JPEG", quality=90, optimize=True)
    except BadHero:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadHero(f"The hero picture could not be read as a picture ({exc}). {TRY}.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated and corrupt files this way.
        raise BadHero(f"The hero picture is damaged or cut short ({exc}). {TRY}.") from None
    return out.getvalue()


def _on_paper(img: Image.Image) -> Image.Image:
    """Transparent parts of a drawing become white paper, not black."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        paper = Image.new("RGB", rgba.size, (255, 255, 255))
        paper.paste(rgba, mask=rgba.getchannel("A"))
        return paper
    return img.convert("RGB")


def save(store: MediaStore, story_id: str, jpeg: bytes) -> str:
    """Keep the normalised picture with the story; its media key."""
    key = media.hero_key(story_id)
    store.put(key, jpeg, content_type="image/jpeg")
    return key


def remove(store: MediaStore, story_id: str) -> None:
    store.delete(media.hero_key(story_id))
