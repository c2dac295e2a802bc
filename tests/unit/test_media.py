"""Pictures are named, kept and found the same way in a folder and in an S3 bucket."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from services.common import media
from services.common.mediastore import FileStore, MediaStore, open_store
from services.gateway.config import GatewaySettings
from services.image_worker.config import ImageSettings
from tests.support.s3 import S3

WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 "


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStore:
    if request.param == "file":
        return FileStore(tmp_path / "media")
    s3: S3 = request.getfixturevalue("s3")
    env = {k.lower(): v for k, v in s3.env(prefix=uuid.uuid4().hex).items()}
    return open_store(GatewaySettings.model_validate(env))


def test_a_page_picture_gets_a_new_name_every_drawing(store: MediaStore) -> None:
    keys = [
        media.store_picture(store, story_id="s1", page=2, attempt=1, data=WEBP, ext=".webp", sheet=None)
        for _ in range(2)
    ]
    assert keys[0] != keys[1]
    assert all(k.startswith("s1/p2-a1-") and k.endswith(".webp") for k in keys)
    assert store.get(keys[0]) == WEBP
    assert media.key_of_url(media.media_url(keys[0])) == keys[0]


def test_pages_find_the_sheet_or_learn_it_failed(store: MediaStore) -> None:
    assert media.find_sheet(store, "s2", "k1") is None
    media.mark_sheet_failed(store, "s2", "k1")
    assert media.find_sheet(store, "s2", "k1") == "failed"
    media.clear_sheet_failed(store, "s2", "k1")  # asked for again: pages wait
    assert media.find_sheet(store, "s2", "k1") is None
    key = media.store_picture(store, story_id="s2", page=0, attempt=1, data=WEBP, ext=".webp", sheet="k1")
    assert key == "s2/sheet-k1.webp"
    assert media.find_sheet(store, "s2", "k1") == key
    # Another outline's sheet is another sheet.
    assert media.find_sheet(store, "s2", "k2") is None
    assert media.same_sheet(key, "k1") and not media.same_sheet(key, "k2")


def test_missing_pictures_are_none(store: MediaStore) -> None:
    assert store.get("s3/p0-a1-nothing.webp") is None
    assert store.names("s3/sheet.") == []
    assert store.check(write=True) == "ok"


@pytest.mark.parametrize(
    "url",
    [
        "/media/../secret.png",
        "/media/s/.p1-a1.claim",
        "/media/s/sheet-k.failed",
        "/media/s/.part-abc",
        "/media/.claims/s",
        "/media/s/a/b.webp",
        "https://example.com/media/s/p.webp",
        None,
    ],
)
def test_only_picture_names_are_media(url: str | None) -> None:
    assert media.key_of_url(url) is None


def test_an_object_store_needs_redis_for_the_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIMENG_API_URL", "http://127.0.0.1:5100")
    monkeypatch.setenv("JIMENG_SESSION_ID", "a-real-looking-session")
    monkeypatch.setenv("MEDIA_STORE", "s3://pictures/media")
    with pytest.raises(ValueError, match="needs REDIS_URL"):
        ImageSettings()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert ImageSettings().media_on_s3
    monkeypatch.setenv("MEDIA_STORE", "ftp://pictures")
    with pytest.raises(ValueError, match=r"file:<directory> or s3://<bucket>/<prefix>"):
        ImageSettings()
