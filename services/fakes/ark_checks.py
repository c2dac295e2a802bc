"""What the fake Ark knows and checks before it draws (docs/upstreams.md).

Its models, limits and error answers, and the checks in Ark's order: the key, the
model, then the parameters and reference images. The server (ark.py) wires these
to its route and times the answers.
"""

from __future__ import annotations

import io
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError

from services.fakes.signed import Unreadable, UrlStyle, source_bytes

# Where its pictures are served: how the upstream's object store signs a URL.
MISMATCH = "The request signature we calculated does not match."
URLS = UrlStyle(prefix="/tos", expires="X-Tos-Expires", signature="X-Tos-Signature", mismatch=MISMATCH)

PATH = "/api/v3/images/generations"
MODELS = ("doubao-seedream-4-0-250828", "doubao-seedream-4-5-251128", "doubao-seedream-5-0-260128")
DEFAULT_KEY = "ark-offline-fake-key"
SCALES = {"1K": 1024, "2K": 2048, "4K": 4096}
MIN_PIXELS, MAX_PIXELS = 1280 * 720, 4096 * 4096
MAX_IMAGES = 14  # reference images in, Seedream 4.x
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_SET = 15  # references plus pictures out, with sequential generation
TOO_MANY_IMAGES = f"The request failed because at most {MAX_IMAGES} input images are supported."
TOO_LARGE_SET = f"The request failed because input and output images together may be at most {MAX_SET}."
OVERSIZED_IMAGE = "The request failed because the size of the input image exceeds the limit."
UNSUPPORTED_IMAGE = "The request failed because the image format is not supported by the API."

TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalServiceError",
    503: "ServiceUnavailable",
}

# status, code, message for the faults that answer with an error at once.
FAULT_ERRORS: dict[str, tuple[int, str, str]] = {
    "auth": (401, "AuthenticationError", "The API key or AK/SK in the request is missing or invalid."),
    "overdue": (
        403,
        "AccountOverdueError",
        "The request failed because your account has an overdue balance.",
    ),
    "model_not_open": (
        404,
        "ModelNotOpen",
        "Your account has not activated the model {model}. "
        "Please activate the model service in the Ark Console.",
    ),
    "access_denied": (
        403,
        "AccessDenied",
        "The request failed because you do not have access to the requested resource.",
    ),
    "rate_limit": (
        429,
        "RateLimitExceeded.EndpointRPMExceeded",
        "The Requests Per Minute (RPM) limit of the associated endpoint for your account has been exceeded.",
    ),
    "quota": (429, "QuotaExceeded", "Your account has exhausted its quota for the model {model}."),
    "content_policy_input": (
        400,
        "InputTextRiskDetection",
        "The request failed because the input text may contain sensitive information.",
    ),
    "content_policy_image": (
        400,
        "InputImageRiskDetection",
        "The request failed because the input image may contain sensitive information.",
    ),
    "server_error": (500, "InternalServiceError", "The service encountered an unexpected internal error."),
    "unavailable": (503, "ServiceUnavailable", "The service is temporarily unable to handle the request."),
}
# Refused only after the picture was drawn, when the output is checked.
OUTPUT_POLICY = (
    400,
    "OutputImageRiskDetection",
    "The request failed because the output image may contain sensitive information.",
)
FAULT_MODES = (*FAULT_ERRORS, "content_policy_output", "hang")

_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,(.*)$", re.DOTALL)
_WXH = re.compile(r"^(\d+)x(\d+)$")


class ArkError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param

    def response(self) -> JSONResponse:
        request_id = f"{time.strftime('%Y%m%d%H%M%S')}{secrets.token_hex(10)}"
        body = {
            "error": {
                "code": self.code,
                "message": f"{self.message} Request id: {request_id}",
                "param": self.param,
                "type": TYPES.get(self.status, "BadRequest"),
            }
        }
        return JSONResponse(body, status_code=self.status)


@dataclass(frozen=True)
class Params:
    model: str
    prompt: str
    size: tuple[int, int] | None  # None: the model picks the shape (a bare scale)
    images: list[str]
    response_format: str


def authenticate(authorization: str | None, keys: frozenset[str]) -> None:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or key.strip() not in keys:
        raise ArkError(
            401, "AuthenticationError", "The API key or AK/SK in the request is missing or invalid."
        )


def check_model(body: dict[str, Any], open_models: frozenset[str]) -> str:
    model = body.get("model")
    if model is None:
        raise ArkError(400, "MissingParameter", "The request failed because it is missing `model`.", "model")
    if not isinstance(model, str) or (model not in MODELS and not model.startswith("ep-")):
        raise ArkError(
            404,
            "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {model} does not exist or you do not have access to it.",
        )
    if model in MODELS and model not in open_models:
        raise ArkError(
            *FAULT_ERRORS["model_not_open"][:2], FAULT_ERRORS["model_not_open"][2].format(model=model)
        )
    return model


def validate(body: dict[str, Any], model: str) -> Params:
    """The parameter checks, after the key and the model, as Ark makes them."""
    prompt = body.get("prompt")
    if prompt is None:
        raise ArkError(
            400, "MissingParameter", "The request failed because it is missing `prompt`.", "prompt"
        )
    if not isinstance(prompt, str) or not prompt.strip():
        raise _invalid("prompt")
    size = _size(body.get("size", "2K"))
    raw = body.get("image", [])
    images = [raw] if isinstance(raw, str) else raw
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise _invalid("image")
    if len(images) > MAX_IMAGES:
        raise _bad_request("InvalidParameter.UnsupportedImageCount", TOO_MANY_IMAGES, "image")
    sequential = body.get("sequential_image_generation", "disabled")
    if sequential not in ("auto", "disabled"):
        raise _invalid("sequential_image_generation")
    options = body.get("sequential_image_generation_options") or {}
    wanted = options.get("max_images", 15) if isinstance(options, dict) else 15
    if sequential == "auto" and (not isinstance(wanted, int) or len(images) + wanted > MAX_SET):
        raise _bad_request(
            "InvalidParameter", TOO_LARGE_SET, "sequential_image_generation_options.max_images"
        )
    response_format = body.get("response_format", "url")
    if response_format not in ("url", "b64_json"):
        raise _invalid("response_format")
    watermark = body.get("watermark", True)
    if not isinstance(watermark, bool):
        raise _invalid("watermark")
    return Params(model=model, prompt=prompt, size=size, images=images, response_format=response_format)


def _size(value: Any) -> tuple[int, int] | None:
    if isinstance(value, str) and value.upper() in SCALES:
        return None
    match = _WXH.match(value) if isinstance(value, str) else None
    if match:
        width, height = int(match.group(1)), int(match.group(2))
        if MIN_PIXELS <= width * height <= MAX_PIXELS and max(width, height) <= 16 * min(width, height):
            return width, height
    raise ArkError(
        400,
        "InvalidParameter",
        "A parameter specified in the request is not valid: size. Use 1K, 2K, 4K or WIDTHxHEIGHT "
        "with a total between 1280x720 and 4096x4096 pixels and an aspect ratio between 1/16 and 16.",
        "size",
    )


async def reference(source: str, index: int) -> Image.Image:
    if not _DATA_URI.match(source) and not source.startswith(("http://", "https://")):
        raise _bad_image(index, "it is neither a URL nor a data:image/...;base64 URI")
    try:
        data = await source_bytes(source, _DATA_URI, strict=True)
    except Unreadable as exc:
        why = {"base64": "its base64 data cannot be decoded", "download": "it could not be downloaded"}
        raise _bad_image(index, why.get(exc.step) or f"downloading it gave HTTP {exc.status}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise _bad_request("InvalidParameter.OversizedImage", OVERSIZED_IMAGE, "image")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError):
        raise _bad_request("InvalidParameter.UnsupportedImageFormat", UNSUPPORTED_IMAGE, "image") from None
    return image


def _bad_request(code: str, message: str, param: str) -> ArkError:
    return ArkError(400, code, message, param)


def _invalid(param: str) -> ArkError:
    message = f"A parameter specified in the request is not valid: {param}"
    return ArkError(400, "InvalidParameter", message, param)


def _bad_image(index: int, why: str) -> ArkError:
    return ArkError(
        400,
        "InvalidParameter",
        f"A parameter specified in the request is not valid: image {index}: {why}",
        "image",
    )


async def json_object(request: Request) -> dict[str, Any]:
    try:
        value = await request.json()
    except ValueError:
        raise ArkError(400, "InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ArkError(400, "InvalidParameter", "The request body must be a JSON object.")
    return value
