"""What the fake jimeng-api knows and checks before it draws (docs/upstreams.md).

Its models and regions, its error codes and messages, the session ids it accepts,
and the request checks in the real server's order. The server (jimeng.py) only
wires these to routes and times the answers.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError

from services.fakes import pictures
from services.fakes.signed import Unreadable, UrlStyle, source_bytes

# Where its pictures are served: how the upstream's object store signs a URL.
MISMATCH = "The request signature does not match."
URLS = UrlStyle(prefix="/files", expires="expires", signature="sig", mismatch=MISMATCH)

MODELS = (
    "jimeng-5.0",
    "jimeng-4.6",
    "jimeng-4.5",
    "jimeng-4.1",
    "jimeng-4.0",
    "jimeng-3.1",
    "jimeng-3.0",
)
DEFAULT_MODEL = "jimeng-4.5"
RESOLUTIONS = ("1k", "2k", "4k")
# What the international site (region ids with a `us-` prefix) offers; hk/jp/sg ids
# get the mainland list.
US_MODELS = ("jimeng-4.5", "jimeng-4.1", "jimeng-4.0", "jimeng-3.0", "nanobanana", "nanobananapro")
IMAGES_PER_REQUEST = 4
# How long the real server takes to give up when its upstream is unreachable: 4 tries
# 5 s apart for a request, about twice that for a composition's upload step.
UNREACHABLE_SECONDS = 15.0
UPLOAD_UNREACHABLE_SECONDS = 30.0
UNREACHABLE = "getaddrinfo ENOTFOUND jimeng.jianying.com"
MULTI_PICTURE = re.compile(r"绘本|故事|连续|\d+\s*张")
DRAWING_PATHS = ("/v1/images/generations", "/v1/images/compositions")

LOGIN_EXPIRED = "[登录失效]: check login error。请重新获取refresh_token并更新配置"

# code, message for the faults that answer with an error body.
FAULT_ERRORS: dict[str, tuple[int, str]] = {
    "session_expired": (-2002, LOGIN_EXPIRED),
    "no_credits": (-2009, "[积分不足]: credit prededuct not enough"),
    "credits_refused": (-2001, "[请求失败]: 积分扣除失败，请检查账户积分 (错误码: 1006)"),
    "anti_bot": (-2001, "[请求失败]: shark not pass (错误码: 1019)"),
    "content_policy_submit": (-2006, "[内容违规]: 输入的内容可能包含不适宜的信息，请修改后重试"),
    "content_policy": (-2007, "图像生成失败，状态码: 30，错误码: 2038"),
    "generation_timeout": (-2007, "图像生成失败: timed out with no results after polling"),
    "plain_error": (-1000, "timeout of 45000ms exceeded"),
}
# Faults that fail only after the upstream has "worked" on the request for a while.
SLOW_FAULTS = ("content_policy", "generation_timeout", "empty_data")
# "slow": a generation that takes `seconds` (default 60) and then succeeds, paid for
# whether or not its client is still there; "hang": one that never comes back.
FAULT_MODES = (*FAULT_ERRORS, "empty_data", "hang", "slow")

_REGION = re.compile(r"^(us|hk|jp|sg)-", re.IGNORECASE)
_US = re.compile(r"^us-", re.IGNORECASE)
_DATA_URI = re.compile(r"^data:[\w/+.-]+;base64,(.*)$", re.DOTALL)


class Sessions:
    """Which session ids the fake upstream accepts; changeable at runtime."""

    def __init__(
        self, *, live: frozenset[str] | None, dead: frozenset[str], broke: frozenset[str] = frozenset()
    ) -> None:
        self.live: set[str] | None = None if live is None else set(live)
        self.dead: set[str] = set(dead)
        self.broke: set[str] = set(broke)

    def has_credits(self, session_id: str) -> bool:
        return not ({session_id, _bare(session_id)} & self.broke)

    def is_live(self, session_id: str) -> bool:
        forms = {session_id, _bare(session_id)}
        if not _bare(session_id) or forms & self.dead:
            return False
        return self.live is None or bool(forms & self.live)

    def update(
        self,
        *,
        dead: Sequence[str],
        live: Sequence[str],
        broke: Sequence[str] = (),
        funded: Sequence[str] = (),
    ) -> None:
        self.broke |= set(broke)
        self.broke -= set(funded)
        for sid in dead:
            self.dead.add(sid)
            if self.live is not None:
                self.live.discard(sid)
        for sid in live:
            self.dead.discard(sid)
            if self.live is not None:
                self.live.add(sid)


def _bare(session_id: str) -> str:
    """The id without the proxy prefix (`socks5://h:p@`) and region prefix (`us-`)."""
    sid = session_id.strip()
    if "://" in sid and "@" in sid:
        sid = sid.rsplit("@", 1)[1]
    return _REGION.sub("", sid)


class Failure(Exception):
    """An answer of the fake upstream that is an error body (always HTTP 200)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fail(code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": None})


@dataclass(frozen=True)
class Params:
    prompt: str
    model: str
    ratio: str
    response_format: str
    authorization: str
    images: list[str]


def validate(body: dict[str, Any], authorization: str | None, composition: bool) -> Params:
    """The checks jimeng-api makes before it talks to the upstream, in its order."""
    refused = [k for k in ("size", "width", "height") if k in body]
    if refused:
        raise Failure(
            -1000, f"不支持的参数: {', '.join(refused)}。请使用 ratio 和 resolution 参数控制图像尺寸。"
        )
    for key in ("model", "negative_prompt", "ratio", "resolution", "response_format"):
        if key in body and not isinstance(body[key], str):
            raise Failure(-2000, f"Params body.{key} invalid")
    if not isinstance(body.get("prompt"), str):
        raise Failure(-2000, "Params body.prompt invalid")
    strength = body.get("sample_strength")
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, int | float)):
        raise Failure(-2000, "Params body.sample_strength invalid")
    raw = body.get("images")
    if composition and not isinstance(raw, list):
        raise Failure(-2000, "Params body.images invalid")
    if authorization is None:
        raise Failure(-2000, "Params headers.authorization invalid")
    images: list[str] = []
    if composition and isinstance(raw, list):
        if not raw:
            raise Failure(-1000, "至少需要提供1张输入图片")
        if len(raw) > 10:
            raise Failure(-1000, "最多支持10张输入图片")
        for i, item in enumerate(raw, start=1):
            url = item.get("url") if isinstance(item, dict) else item
            if not isinstance(url, str) or not url:
                raise Failure(-1000, f"图片 {i} 格式不正确：应为URL字符串或包含url字段的对象")
            images.append(url)
    ratio = body.get("ratio", "1:1")
    if ratio not in pictures.RATIOS:
        # A value of the right type that the server does not offer: a plain error (-1000).
        raise Failure(-1000, f"不支持的比例: {ratio}，支持: {' '.join(pictures.RATIOS)}")
    resolution = body.get("resolution", "2k")
    if resolution not in RESOLUTIONS:
        raise Failure(-1000, f"不支持的分辨率: {resolution}，支持: {' '.join(RESOLUTIONS)}")
    model = body.get("model", DEFAULT_MODEL)
    return Params(
        prompt=body["prompt"],
        # An unknown model silently becomes the default, as upstream does.
        model=model if model in MODELS else DEFAULT_MODEL,
        ratio=ratio,
        response_format=body.get("response_format", "url"),
        authorization=authorization,
        images=images,
    )


def split_ids(authorization: str) -> list[str]:
    # Same as jimeng-api's tokenSplit, plus trimming spaces around the commas.
    return [t.strip() for t in authorization.replace("Bearer ", "", 1).split(",")]


async def reference(request: Request, source: str) -> Image.Image:
    """The first reference image, from a data URI or by downloading it."""
    try:
        data = await source_bytes(source, _DATA_URI, strict=False)
    except Unreadable as exc:
        if exc.step == "base64":
            raise Failure(-1000, "图片 1 的 BASE64 数据无法解析") from None
        why = f"[{exc.status}] {exc.reason}" if exc.step == "status" else repr(exc.error)
        raise Failure(-1000, f"File {source} is not valid: {why}") from None
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError):
        raise Failure(-1000, f"上传文件失败: {source[:60]} 不是可识别的图片") from None
    return image


def small(image: Image.Image | None, side: int) -> Image.Image | None:
    if image is None:
        return None
    small = image.convert("RGB")
    small.thumbnail((side, side))
    return small


async def json_object(request: Request) -> dict[str, Any]:
    # A body that is not a JSON object reads as empty, so the field checks report
    # which field is missing, as jimeng-api's validators do.
    try:
        value = await request.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# ------------------------------------------------------------------------ command line
