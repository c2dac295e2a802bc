"""The fake jimeng's illustrator: small real pictures, different for every prompt.

Each picture is a simple scene (sky, sun or moon, hills, trees, a round character)
whose palette and layout are seeded from a hash of the prompt, so two prompts give
visibly different images and the same prompt gives the same set. A composition
blends in the reference image and pastes a framed copy into a corner, so a test
(or a person looking at the demo) can see that the reference was used.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random

from PIL import Image, ImageDraw

RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "16:9": (16, 9),
    "9:16": (9, 16),
    "3:2": (3, 2),
    "2:3": (2, 3),
    "21:9": (21, 9),
}

RGB = tuple[int, int, int]


def size_for(ratio: str, *, long_side: int = 640) -> tuple[int, int]:
    """Pixel size with the ratio's shape; modest whatever the resolution, for speed."""
    w, h = RATIOS[ratio]
    if w >= h:
        return long_side, round(long_side * h / w)
    return round(long_side * w / h), long_side


def render(
    prompt: str,
    *,
    ratio: str,
    variant: int,
    reference: Image.Image | None = None,
    long_side: int = 640,
) -> bytes:
    """One webp picture for the prompt; `variant` tells the four of a set apart."""
    width, height = size_for(ratio, long_side=long_side)
    seed = hashlib.sha256(prompt.encode()).digest()
    rng = random.Random(int.from_bytes(seed[:8], "big") + variant)
    words = prompt.lower()
    night = any(w in words for w in ("night", "star", "moon", "dark", "夜", "星"))
    water = any(w in words for w in ("river", "sea", "lake", "rain", "puddle", "河", "海", "雨"))

    hue = (seed[8] / 255 + variant * 0.07) % 1.0
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)

    _sky(draw, rng, width=width, height=height, hue=hue, night=night)
    horizon = _land(draw, rng, width=width, height=height, hue=hue, night=night, water=water)
    _character(draw, rng, width=width, height=height, horizon=horizon, hue=(hue + 0.6) % 1)

    if reference is not None:
        img = _with_reference(img, reference)

    out = io.BytesIO()
    # method=0 is the fastest encoder setting: tests make many of these.
    img.save(out, "WEBP", quality=80, method=0)
    return out.getvalue()


def _sky(
    draw: ImageDraw.ImageDraw, rng: random.Random, *, width: int, height: int, hue: float, night: bool
) -> None:
    """A gradient sky, stars at night, and the sun or the moon."""
    sky_top = _hsv(hue, 0.55, 0.25 if night else 0.95)
    sky_bottom = _hsv((hue + 0.08) % 1, 0.35, 0.45 if night else 1.0)
    for y in range(height):
        draw.line([(0, y), (width, y)], fill=_mix(sky_top, sky_bottom, y / max(height - 1, 1)))

    if night:
        for _ in range(40):
            x, y = rng.randrange(width), rng.randrange(height // 2)
            r = rng.choice((1, 1, 2))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 250, 210))
    radius = max(width, height) // 12
    cx, cy = rng.randrange(radius, width - radius), rng.randrange(radius, height // 3 + radius)
    light = (250, 245, 215) if night else _hsv((hue + 0.5) % 1 * 0.15, 0.7, 1.0)
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=light)


def _land(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    *,
    width: int,
    height: int,
    hue: float,
    night: bool,
    water: bool,
) -> int:
    """Rolling hills, a river when the prompt has water, a few trees; returns the horizon."""
    horizon = int(height * rng.uniform(0.55, 0.7))
    ground_hue = (hue + rng.uniform(0.2, 0.4)) % 1
    for i in range(3):
        top = horizon + i * height // 14 - rng.randrange(height // 10)
        left = -width // 3 + rng.randrange(width // 2)
        colour = _hsv(ground_hue, 0.5, (0.35 if night else 0.6) + 0.1 * i)
        draw.ellipse([left, top, left + width * 1.3, top + height], fill=colour)
    if water:
        band = height // 12
        y = horizon + height // 6
        draw.rectangle([0, y, width, y + band], fill=_hsv(0.58, 0.5, 0.55 if night else 0.9))

    for _ in range(rng.randrange(2, 6)):
        x = rng.randrange(width)
        base = horizon + rng.randrange(height // 8)
        trunk, crown = height // 40 + 2, height // 9
        draw.rectangle([x - trunk, base - crown, x + trunk, base], fill=(110, 75, 50))
        draw.ellipse(
            [x - crown, base - 2 * crown, x + crown, base - crown // 2],
            fill=_hsv(ground_hue, 0.6, 0.4 if night else 0.55),
        )
    return horizon


def _character(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    *,
    width: int,
    height: int,
    horizon: int,
    hue: float,
) -> None:
    size = min(width, height) // 5
    x = rng.randrange(size, width - size)
    y = horizon + size // 2
    body = _hsv(hue, 0.55, 0.9)
    draw.ellipse([x - size, y - size, x + size, y + size // 2], fill=body)
    head = size * 2 // 3
    hy = y - size - head // 2
    draw.ellipse([x - head, hy - head, x + head, hy + head], fill=body)
    eye = max(head // 6, 2)
    for dx in (-head // 3, head // 3):
        draw.ellipse([x + dx - eye, hy - eye, x + dx + eye, hy + eye], fill=(30, 30, 40))
    draw.arc([x - head // 3, hy, x + head // 3, hy + head // 2], 20, 160, fill=(30, 30, 40), width=2)


def _with_reference(img: Image.Image, reference: Image.Image) -> Image.Image:
    ref = reference.convert("RGB")
    width, height = img.size
    # Blend a cover-scaled copy into the whole scene, as an edit of it would look...
    scale = max(width / ref.width, height / ref.height)
    cover = ref.resize((max(1, round(ref.width * scale)), max(1, round(ref.height * scale))))
    left, top = (cover.width - width) // 2, (cover.height - height) // 2
    cover = cover.crop((left, top, left + width, top + height))
    img = Image.blend(img, cover, 0.35)
    # ...and paste a framed thumbnail bottom-right, plain to see.
    thumb = ref.copy()
    thumb.thumbnail((width // 3, height // 3))
    frame = 4
    x = width - thumb.width - frame * 3
    y = height - thumb.height - frame * 3
    ImageDraw.Draw(img).rectangle(
        [x - frame, y - frame, x + thumb.width + frame - 1, y + thumb.height + frame - 1],
        fill=(255, 255, 255),
    )
    img.paste(thumb, (x, y))
    return img


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )
