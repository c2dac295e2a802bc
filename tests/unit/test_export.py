"""The picture-book exports open in their readers: PDF pages, EPUB package, one HTML page."""

from __future__ import annotations

import io
import re
import shutil
import uuid
import zipfile
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from PIL import Image, ImageDraw
from pypdf import PdfReader

from services.common.media import mime_of
from services.common.mediastore import FileStore, MediaStore, open_store
from services.gateway import export
from services.gateway.config import GatewaySettings
from services.gateway.store.views import StoryView
from tests.support.s3 import S3

TITLE = "图图去月亮"
ZH_TEXTS = [
    "小兔子图图住在森林边上。每天晚上，她都会坐在窗前，看着天上又大又圆的月亮。\n“月亮上会有什么呢？”图图想。",
    "图图决定造一艘火箭。她找来了纸箱、胶带和妈妈的旧锅，叮叮当当忙了一整天。",
    "火箭“嗖”地一声飞上了天！星星一闪一闪，像在眨眼睛。<script>alert('月亮')</script>",
    "图图终于站在了月亮上。月亮软软的，像一块大大的棉花糖。她带着满口袋的星光回家了。",
]
FAILED = 2  # the page whose picture failed
OPF = "{http://www.idpf.org/2007/opf}"
DC = "{http://purl.org/dc/elements/1.1/}"
XHTML = "{http://www.w3.org/1999/xhtml}"


def _picture(path: Path, color: tuple[int, int, int], size: tuple[int, int], fmt: str) -> None:
    mode = "RGBA" if fmt == "PNG" else "RGB"
    im = Image.new(mode, size, (*color, 255) if mode == "RGBA" else color)
    draw = ImageDraw.Draw(im)
    w, h = size
    draw.ellipse((w * 0.6, h * 0.1, w * 0.85, h * 0.1 + w * 0.25), fill=(255, 240, 170))
    draw.rectangle((0, h * 0.75, w, h), fill=(90, 150, 90))
    im.save(path, fmt)


def _image(status: str, url: str | None) -> dict[str, Any]:
    error = {"code": "image_failed", "message": "drawing failed"} if status == "failed" else None
    return {"status": status, "url": url, "error": error, "started_at": None, "reference": None, "note": None}


def as_view(story: dict[str, Any]) -> StoryView:
    """The view the store hands to the exports, from a story laid out as its public JSON."""
    blank = {"status": "ended", "premise": "", "age": 5, "language": "zh", "style": "crayon"}
    blank |= {
        "total_pages": 0,
        "last_seq": 0,
        "usage": {},
        "character_sheet": {"status": "none"},
        "pages": [],
    }
    return StoryView.model_validate(blank | story)


def _story(
    media: Path, texts: list[str], *, language: str, title: str, failed: set[int], fmt: str = "WEBP"
) -> dict[str, Any]:
    sid = str(uuid.uuid4())
    folder = media / sid
    folder.mkdir(parents=True)
    ext = {"WEBP": "webp", "PNG": "png", "JPEG": "jpg"}[fmt]
    pages = []
    for i, text in enumerate(texts):
        if i in failed:
            image = _image("failed", None)
        else:
            _picture(folder / f"page-{i}.{ext}", (60 + 50 * i, 90, 160), (640, 480), fmt)
            image = _image("ready", f"/media/{sid}/page-{i}.{ext}")
        last = i == len(texts) - 1
        pages.append(
            {
                "index": i,
                "status": "done",
                "text": text,
                "choices": [] if last else ["造一艘火箭", "问问猫头鹰"],
                "chosen": None if last else {"choice": 0, "action": None},
                "error": None,
                "image": image,
            }
        )
    _picture(folder / f"sheet.{ext}", (230, 200, 210), (512, 512), fmt)
    return {
        "story_id": sid,
        "title": title,
        "status": "ended",
        "premise": "一只想去月亮上的小兔子",
        "age": 5,
        "language": language,
        "style": "crayon",
        "total_pages": len(texts),
        "created_at": "2026-01-01T00:00:00+00:00",
        "last_seq": 20,
        "character_sheet": {"status": "ready", "url": f"/media/{sid}/sheet.{ext}"},
        "pages": pages,
    }


@pytest.fixture(params=["file", "s3"])
def zh(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], MediaStore]:
    """A finished Chinese story whose pictures are in a folder, or in an S3 bucket."""
    folder = tmp_path / "media"
    story = _story(folder, ZH_TEXTS, language="zh", title=TITLE, failed={FAILED})
    if request.param == "file":
        return story, FileStore(folder)
    s3: S3 = request.getfixturevalue("s3")
    store = open_store(GatewaySettings.model_validate(_lower(s3.env(prefix=uuid.uuid4().hex))))
    for path in folder.rglob("*.*"):
        key = path.relative_to(folder).as_posix()
        store.put(key, path.read_bytes(), content_type=mime_of(key))
    shutil.rmtree(folder)  # the export reads the bucket, nothing else
    return story, store


def _lower(env: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in env.items()}


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


# ------------------------------------------------------------------------------ PDF


def _fonts(page: Any) -> set[str]:
    fonts = page["/Resources"].get_object().get("/Font") or {}
    return {str(f.get_object()["/BaseFont"]).lstrip("/") for f in fonts.get_object().values()}


def _image_xobjects(page: Any) -> int:
    xobjects = page["/Resources"].get_object().get("/XObject")
    if xobjects is None:
        return 0
    return sum(1 for x in xobjects.get_object().values() if x.get_object()["/Subtype"] == "/Image")


def test_pdf_is_a_chinese_picture_book(zh: tuple[dict[str, Any], MediaStore]) -> None:
    story, media = zh
    data = export.to_pdf(as_view(story), media)
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1 + len(ZH_TEXTS)
    assert reader.metadata is not None and reader.metadata.title == TITLE

    cover = reader.pages[0]
    assert TITLE in _squash(cover.extract_text())
    assert _image_xobjects(cover) == 1  # the character sheet

    for i, text in enumerate(ZH_TEXTS):
        page = reader.pages[1 + i]
        extracted = _squash(page.extract_text())
        assert _squash(text) in extracted, (i, extracted)
        # The system's CJK TrueType font, embedded (a subset), when the package is there.
        assert any("WenQuanYi" in f or f == "STSong-Light" for f in _fonts(page)), _fonts(page)
        assert _image_xobjects(page) == (0 if i == FAILED else 1), i
    assert "完" in reader.pages[-1].extract_text()  # the story ended


def test_pdf_wraps_chinese_without_a_comma_starting_a_line(zh: tuple[dict[str, Any], MediaStore]) -> None:
    story, media = zh
    long = "图图跑呀跑，" * 60
    story["pages"][0]["text"] = long
    reader = PdfReader(io.BytesIO(export.to_pdf(as_view(story), media)))
    lines = [ln for p in reader.pages[1:3] for ln in p.extract_text().splitlines() if ln.strip()]
    assert len(lines) > 5  # wrapped over many lines
    assert not [ln for ln in lines if ln.strip()[0] in "，。！？；：”"], lines
    # the text runs on over a second page (each page with the story page's number)
    assert len(reader.pages) == 2 + len(ZH_TEXTS)
    flowed = [
        ln for p in reader.pages[1:3] for ln in p.extract_text().splitlines() if not ln.strip().isdigit()
    ]
    assert _squash("".join(flowed)).startswith(_squash(long))


def test_pdf_english_uses_helvetica(tmp_path: Path) -> None:
    texts = [
        'Tutu the rabbit lived at the edge of the forest.\n\n"What is up there?" she wondered.',
        "She built a rocket from boxes & tape <b>not bold</b>.",
        "The moon was soft, like a marshmallow. The End is near.",
    ]
    story = _story(
        tmp_path / "media", texts, language="en", title="Tutu Goes to the Moon", failed=set(), fmt="PNG"
    )
    reader = PdfReader(io.BytesIO(export.to_pdf(as_view(story), FileStore(tmp_path / "media"))))
    assert len(reader.pages) == 1 + len(texts)
    for i, text in enumerate(texts):
        page = reader.pages[1 + i]
        fonts = _fonts(page)
        assert "Helvetica" in fonts and not any("WenQuanYi" in f or f == "STSong-Light" for f in fonts)
        assert _squash(text) in _squash(page.extract_text())
        assert _image_xobjects(page) == 1


# ------------------------------------------------------------------------------ EPUB


def test_epub_is_a_valid_package(zh: tuple[dict[str, Any], MediaStore]) -> None:
    story, media = zh
    book = zipfile.ZipFile(io.BytesIO(export.to_epub(as_view(story), media)))
    first = book.infolist()[0]
    assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
    assert first.extra == b""
    assert book.read("mimetype") == b"application/epub+zip"
    assert book.testzip() is None

    container = ET.fromstring(book.read("META-INF/container.xml"))
    rootfile = container.find(".//{urn:oasis:names:tc:opendocument:xmlns:container}rootfile")
    assert rootfile is not None
    opf_path = PurePosixPath(rootfile.attrib["full-path"])
    opf = ET.fromstring(book.read(str(opf_path)))
    assert opf.attrib["version"] == "3.0"
    assert opf.findtext(f"{OPF}metadata/{DC}title") == TITLE
    assert opf.findtext(f"{OPF}metadata/{DC}language") == "zh-CN"

    items = {i.attrib["id"]: i.attrib for i in opf.iter(f"{OPF}item")}
    base = opf_path.parent

    def read(href: str) -> bytes:
        return book.read(str(base / href))

    assert any("nav" in a.get("properties", "").split() for a in items.values())
    images = {a["href"]: a for a in items.values() if a["media-type"].startswith("image/")}
    assert len(images) == 1 + len(ZH_TEXTS) - 1  # cover + every page but the failed one
    for href, attrs in images.items():
        assert attrs["media-type"] in ("image/png", "image/jpeg")
        with Image.open(io.BytesIO(read(href))) as im:
            assert im.format in ("PNG", "JPEG")
            assert attrs["media-type"] == Image.MIME[im.format]
    assert any("cover-image" in a.get("properties", "") for a in images.values())

    spine = [items[r.attrib["idref"]] for r in opf.iter(f"{OPF}itemref")]
    assert len(spine) == 1 + len(ZH_TEXTS)  # title page + one chapter per page
    for i, chapter in enumerate(spine[1:]):
        assert chapter["media-type"] == "application/xhtml+xml"
        doc = ET.fromstring(read(chapter["href"]))
        assert doc.attrib["lang"] == "zh-CN"
        body = doc.find(f"{XHTML}body")
        assert body is not None
        assert _squash(ZH_TEXTS[i]) in _squash("".join(body.itertext()))
        assert doc.find(f".//{XHTML}script") is None  # the <script> in the text stayed text
        srcs = [img.attrib["src"] for img in doc.iter(f"{XHTML}img")]
        assert len(srcs) == (0 if i == FAILED else 1)
        for src in srcs:
            assert str(PurePosixPath(chapter["href"]).parent / src).lstrip("./") in images
    title_page = ET.fromstring(read(spine[0]["href"]))
    assert TITLE in "".join(title_page.itertext())

    nav = next(a for a in items.values() if "nav" in a.get("properties", ""))
    toc = ET.fromstring(read(nav["href"]))
    assert {a.attrib["href"] for a in toc.iter(f"{XHTML}a")} >= {c["href"] for c in spine}


# ------------------------------------------------------------------------------ HTML


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        if tag == "img":
            self.imgs.append(values.get("src") or "")
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action", "data")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_one_self_contained_page(zh: tuple[dict[str, Any], MediaStore]) -> None:
    story, media = zh
    data = export.to_html(as_view(story), media)
    page = _Page()
    page.feed(data.decode("utf-8"))
    assert page.lang == "zh-CN"
    assert len(page.imgs) == 1 + len(ZH_TEXTS) - 1  # the sheet + every page but the failed one
    assert all(src.startswith("data:image/") for src in page.imgs)
    assert not [u for u in page.links if not u.startswith(("data:", "#"))]
    assert b"http://" not in data and b"https://" not in data
    assert not re.search(rb"url\(|@import", data)
    assert "script" not in page.tags and "link" not in page.tags
    assert b"&lt;script&gt;alert(" in data
    text = "".join(page.text)
    assert TITLE in text
    for body in ZH_TEXTS:
        assert _squash(body) in _squash(text)
    assert b"Noto Sans CJK SC" in data and b"@page" in data and b"break-after: page" in data


def test_english_html_and_epub_language(tmp_path: Path) -> None:
    story = _story(
        tmp_path / "m", ["Once upon a time."], language="en", title="Moon", failed=set(), fmt="JPEG"
    )
    page = _Page()
    page.feed(export.to_html(as_view(story), FileStore(tmp_path / "m")).decode())
    assert page.lang == "en"
    book = zipfile.ZipFile(io.BytesIO(export.to_epub(as_view(story), FileStore(tmp_path / "m"))))
    assert b"<dc:language>en</dc:language>" in book.read("EPUB/content.opf")


# ------------------------------------------------------------------------------ pictures that fail


def test_missing_broken_or_outside_pictures_are_skipped(
    zh: tuple[dict[str, Any], MediaStore], tmp_path: Path
) -> None:
    story, media = zh
    sid = story["story_id"]
    picture = media.get(f"{sid}/page-0.webp")
    assert picture is not None
    (tmp_path / "secret.png").write_bytes(picture)
    media.put(f"{sid}/broken.webp", b"RIFF not really a picture", content_type="image/webp")
    story["pages"][0]["image"]["url"] = f"/media/{sid}/gone.webp"  # deleted
    story["pages"][1]["image"]["url"] = f"/media/{sid}/broken.webp"  # unreadable
    story["pages"][3]["image"]["url"] = "/media/../secret.png"  # outside the store
    story["character_sheet"]["url"] = "https://example.com/sheet.png"  # never fetched
    html = _Page()
    html.feed(export.to_html(as_view(story), media).decode())
    assert html.imgs == []
    assert all(_squash(t) in _squash("".join(html.text)) for t in ZH_TEXTS)

    reader = PdfReader(io.BytesIO(export.to_pdf(as_view(story), media)))
    assert len(reader.pages) == 1 + len(ZH_TEXTS)
    assert sum(_image_xobjects(p) for p in reader.pages) == 0
    assert _squash(ZH_TEXTS[0]) in _squash(reader.pages[1].extract_text())

    book = zipfile.ZipFile(io.BytesIO(export.to_epub(as_view(story), media)))
    assert not [n for n in book.namelist() if n.startswith("EPUB/images/")]


def test_unfinished_pages_are_left_out(zh: tuple[dict[str, Any], MediaStore]) -> None:
    story, media = zh
    story["status"] = "in_progress"
    story["pages"].append(
        {
            "index": 4,
            "status": "writing",
            "text": "半句",
            "choices": [],
            "chosen": None,
            "error": None,
            "image": _image("pending", None),
        }
    )
    reader = PdfReader(io.BytesIO(export.to_pdf(as_view(story), media)))
    assert len(reader.pages) == 1 + len(ZH_TEXTS)
    assert "半句" not in export.to_html(as_view(story), media).decode()
    assert "完" not in reader.pages[-1].extract_text()


# ------------------------------------------------------------------------------ file names


@pytest.mark.parametrize(
    ("title", "ext", "expected"),
    [
        ("图图去月亮", "pdf", "图图去月亮.pdf"),
        ("Tutu Goes to the Moon!", "pdf", "Tutu-Goes-to-the-Moon.pdf"),
        ("Café à la lune", ".epub", "Cafe-a-la-lune.epub"),
        ("../../etc/passwd", "html", "etc-passwd.html"),
        ('a/b\\c:d*e?"f<g>h|i\x00j', "pdf", "a-b-c-d-e-f-g-h-i-j.pdf"),
        ("", "pdf", "story-1a2b3c4d.pdf"),
        (None, "epub", "story-1a2b3c4d.epub"),
        ("!!!", "pdf", "story-1a2b3c4d.pdf"),
        ("x" * 200, "pdf", "x" * 60 + ".pdf"),
    ],
)
def test_filename(title: str | None, ext: str, expected: str) -> None:
    story = {"story_id": "1a2b3c4d-5e6f-4a0b-8c9d-0e1f2a3b4c5d", "title": title}
    assert export.filename(as_view(story), ext) == expected


# ------------------------------------------------------------------------------ alt text, share page


def test_pictures_are_described_in_the_storys_language(zh: tuple[dict[str, Any], Path]) -> None:
    story, media = zh
    story["pages"][0]["alt"] = "图里：小兔子图图坐在窗前，看着又大又圆的月亮。"
    html = export.to_html(as_view(story), media).decode()
    assert 'alt="图里：小兔子图图坐在窗前，看着又大又圆的月亮。"' in html
    assert 'alt="第 2 页"' in html, "a page without a description keeps its number"
    book = zipfile.ZipFile(io.BytesIO(export.to_epub(as_view(story), media)))
    chapter = next(n for n in book.namelist() if n.endswith("page-01.xhtml"))
    assert "图里：小兔子图图坐在窗前" in book.read(chapter).decode()


def test_the_shared_page_reads_aloud_and_invites_a_story_of_ones_own(zh: tuple[dict[str, Any], Path]) -> None:
    story, media = zh
    shared = export.to_html(as_view(story), media, shared=True).decode()
    page = _Page()
    page.feed(shared)
    assert '<script type="module" src="/static/share-page.js"></script>' in shared
    assert "script-src 'self'" in shared, "the page's own policy lets our one script run, nothing else"
    assert 'id="read-aloud"' in shared and "读给我听" in shared
    assert '<a href="/" id="make-own">编一个自己的故事</a>' in shared
    assert "script" in page.tags and "/static/share-page.js" in page.links
    # The file a reader downloads stays without any script.
    downloaded = export.to_html(as_view(story), media).decode()
    assert "<script" not in downloaded and "read-aloud" not in downloaded
