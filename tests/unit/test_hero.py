"""The child's own hero picture is decoded, capped and encoded again before it is kept."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from services.common import media
from services.common.mediastore import FileStore
from services.gateway import hero

CAP = 4_000_000


def _png(size: tuple[int, int], mode: str = "RGBA", color: tuple[int, ...] = (200, 40, 40, 0)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    return out.getvalue()


def _url(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


def test_a_drawing_becomes_a_small_jpeg_on_white_paper() -> None:
    drawing = Image.new("RGBA", (2400, 1800), (0, 0, 0, 0))
    drawing.paste((30, 90, 200, 255), (1000, 700, 1400, 1100))  # a blue square on nothing
    out = io.BytesIO()
    drawing.save(out, "PNG")
    raw = hero.decode_data_url(_url(out.getvalue()), max_bytes=CAP)
    jpeg = hero.normalise(raw, max_bytes=CAP, max_pixels=40_000_000)
    with Image.open(io.BytesIO(jpeg)) as kept:
        assert kept.format == "JPEG" and max(kept.size) == hero.HERO_SIDE and kept.size == (1024, 768)
        corner = kept.getpixel((5, 5))
        assert corner == pytest.approx((255, 255, 255), abs=2), "transparent is paper, not black"
        assert kept.getpixel((512, 384))[2] > 150, "the drawing itself is kept"
    assert jpeg != raw


def test_a_photo_taken_sideways_is_turned_upright() -> None:
    photo = Image.new("RGB", (400, 200), (250, 200, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° to show": what phones write
    out = io.BytesIO()
    photo.save(out, "JPEG", exif=exif)
    with Image.open(io.BytesIO(hero.normalise(out.getvalue(), max_bytes=CAP, max_pixels=40_000_000))) as kept:
        assert kept.size == (200, 400)
        assert not kept.getexif(), "nothing of the upload's metadata is kept"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("https://example.com/cat.png", "data:image"),
        ("data:text/html;base64,PGgxPg==", "data:image"),
        ("data:image/png;base64,!!!not base64!!!", "not valid base64"),
        (_url(b"GIF89a but not really a picture"), "could not be read"),
        (_url(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "png"), "could not be read"),
        (_url(_png((64, 64))[:60]), "damaged or cut short"),
    ],
)
def test_what_is_not_a_picture_is_refused_with_what_to_send(value: str, says: str) -> None:
    with pytest.raises(hero.BadHero, match=says) as caught:
        hero.normalise(hero.decode_data_url(value, max_bytes=CAP), max_bytes=CAP, max_pixels=40_000_000)
    assert "PNG, JPEG or WebP" in str(caught.value) or "data:image" in str(caught.value)


def test_size_and_pixel_caps() -> None:
    big = "data:image/png;base64," + "A" * (CAP * 4 // 3 + 400)
    with pytest.raises(hero.BadHero, match=r"MB fit"):
        hero.decode_data_url(big, max_bytes=CAP)
    # A small file that would decode to a huge picture: refused before it is decoded.
    wide = _png((8000, 6000), mode="1", color=(0,))
    assert len(wide) < 100_000
    with pytest.raises(hero.BadHero, match="8000×6000 pixels"):
        hero.normalise(wide, max_bytes=CAP, max_pixels=40_000_000)


def test_kept_with_the_story_and_removed_with_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    key = hero.save(store, "abc", b"jpeg")
    assert key == "abc/hero.jpg" and store.get(key) == b"jpeg"
    assert media.hero_reference("abc", key) == key
    assert media.hero_reference("other", key) is None, "a sheet draws only from its own story's hero"
    hero.remove(store, "abc")
    assert store.get(key) is None
