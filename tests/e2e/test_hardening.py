"""What a security review checks on a running system: secrets in logs, what /media
serves, response headers, and which bodies a state-changing call accepts.

One whole story is played on the shared stack (every service and both fakes as
processes), shared, exported, redrawn, and the doctor is run against it.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.devstack.procs import Stack
from tests.support.reader import AutoReader
from tests.support.stack import ADMIN_TOKEN

pytestmark = pytest.mark.e2e


@dataclass
class Played:
    story_id: str
    token: str
    share_id: str
    pictures: dict[int, str]
    doctor_output: str


@pytest.fixture(scope="module")
async def played(stack: Stack) -> Played:
    auto = AutoReader([stack.gateway_url, stack.gateway_url_of(1)], premise="小熊和月亮做朋友", age=6)
    await auto.play(limit=120)
    story_id, token = auto.reader.story_id, auto.reader.token
    pictures = {e["page"]: e["url"] for e in auto.reading.of("page.image.done")}
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        share_id = (await http.post(f"/api/stories/{story_id}/share", headers=auth)).json()["share_id"]
        for path in (f"/read/{share_id}", f"/api/shared/{share_id}", f"/api/shared/{share_id}/export/html"):
            assert (await http.get(path)).status_code == 200
        assert (await http.get(f"/api/stories/{story_id}/export/epub", headers=auth)).status_code == 200
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert (await http.get("/api/admin/usage", headers=admin)).status_code == 200
        # Failures are logged too: wrong tokens, unknown shares.
        await http.get(f"/api/stories/{story_id}", headers={"Authorization": f"Bearer {token}x"})
        await http.get(f"/read/{share_id}x")
    env = {**stack.service_env(), "GATEWAY_URL": stack.gateway_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.doctor",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    return Played(story_id, token, share_id, pictures, out.decode())


async def test_no_token_share_id_or_secret_in_any_log(stack: Stack, played: Played) -> None:
    assert stack.config.log_dir is not None
    logs = {p.name: p.read_text(errors="replace") for p in stack.config.log_dir.glob("*.log")}
    assert {"gateway.log", "gateway-1.log", "llm_worker.log", "image_worker.log"} <= set(logs)
    assert any("WebSocket" in text for text in logs.values()), "socket connections are logged"
    env = stack.service_env()
    secrets = {
        "story token": played.token,
        "share id": played.share_id,
        "Moonshot key": env["MOONSHOT_API_KEY"],
        "jimeng session id": env["JIMENG_SESSION_ID"],
        "admin token": ADMIN_TOKEN,
    }
    logs["doctor output"] = played.doctor_output
    for name, text in logs.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} appears in {name}"


async def test_media_serves_only_the_current_pictures(stack: Stack, played: Played) -> None:
    folder = stack.config.media_dir / played.story_id
    # Claims are kept beside the stories' folders, under a name /media never serves.
    claims = sorted((stack.config.media_dir / ".claims" / played.story_id).iterdir())
    assert any(p.name.endswith(".claim") for p in claims), claims
    hidden = [p.name for p in claims] + [f"../.claims/{played.story_id}/{claims[0].name}"]
    (folder / ".part-abc123.png").write_bytes(b"\x89PNG half written")
    (folder / "sheet-zz.failed").touch()
    current = next(iter(played.pictures.values()))
    on_disk = folder / current.rsplit("/", 1)[1]
    (folder / "p9-a1-notinthestory.png").write_bytes(on_disk.read_bytes())
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        extra = [".part-abc123.png", "sheet-zz.failed", "p9-a1-notinthestory.png", "..%2f..%2fx"]
        for name in [*hidden, *extra]:
            r = await http.get(f"/media/{played.story_id}/{name}")
            assert r.status_code == 404, (name, r.status_code)
            assert r.json()["error"]["code"] == "not_found"
        r = await http.get(current)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/")


async def test_a_redrawn_picture_is_no_longer_served(stack: Stack, played: Played) -> None:
    page = min(played.pictures)
    old = played.pictures[page]
    auto = AutoReader([stack.gateway_url], premise="-")
    reader, reading = auto.reader, auto.reading
    reader.story_id, reader.token = played.story_id, played.token
    try:
        story = await reader.story()
        reading.events.append({"seq": story["last_seq"], "type": "_"})
        retry = f"/api/stories/{played.story_id}/pages/{page}/image/retry"
        r = await reader.http.post(retry, headers=reader.auth)
        assert r.status_code == 202, r.text
        await reader.read(reading, until=lambda m: m["type"] == "page.image.done" and m["page"] == page)
        new = reading.of("page.image.done")[-1]["url"]
        assert new != old
        assert (await reader.http.get(new)).status_code == 200
        assert (await reader.http.get(old)).status_code == 404
    finally:
        await reader.close()
    played.pictures[page] = new


@pytest.mark.parametrize(
    "where", ["/", "/static/app.js", "/read/{share}", "/api/shared/{share}/export/html", "picture", "/api/x"]
)
async def test_security_headers(stack: Stack, played: Played, where: str) -> None:
    path = next(iter(played.pictures.values())) if where == "picture" else where.format(share=played.share_id)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        r = await http.get(path)
    csp = r.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src" in csp, (path, csp)
    script = next((d for d in csp.split(";") if d.strip().startswith("script-src")), "")
    assert "unsafe-inline" not in script and "unsafe-eval" not in script
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("referrer-policy") == "no-referrer"
    assert r.headers.get("x-frame-options") == "DENY"


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/plain", '{"premise": "a bunny"}'),
        ("application/x-www-form-urlencoded", "premise=a+bunny"),
        ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb--x--'),
        (None, '{"premise": "a bunny"}'),
    ],
)
async def test_state_changing_calls_take_json_only(
    stack: Stack, played: Played, content_type: str | None, body: str
) -> None:
    """A page on another site can send these without asking the browser first; JSON it cannot."""
    headers = {"content-type": content_type} if content_type else {}
    auth = {"Authorization": f"Bearer {played.token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        calls: list[Any] = [
            http.post("/api/stories", content=body, headers=headers),
            http.post("/api/library", content=body, headers=headers),
            http.post(f"/api/stories/{played.story_id}/choices", content=body, headers={**headers, **auth}),
        ]
        for r in await asyncio.gather(*calls):
            assert r.status_code == 415, r.text
            error = r.json()["error"]
            assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]
