"""Every 4xx/5xx body is {"error": {"code", "message"}}, and the message says what to do."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.store.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    StoreError,
    TooMany,
    Unavailable,
    Unsuitable,
)

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ErrorDetail(BaseModel):
    code: str
    message: str = Field(description="what happened, why, and what to do")


class ErrorBody(BaseModel):
    error: ErrorDetail


# Documented on every route: the statuses a call may answer with the error body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (401, "no token"),
        (403, "the token is not this story's"),
        (404, "unknown story, page or link"),
        (409, "not now: the story is not in a state that allows it"),
        (413, "the body is too large"),
        (415, "the body is not JSON"),
        (422, "invalid or unsuitable input"),
        (429, "too many requests from this client"),
        (503, "busy or the broker is away; try again after Retry-After seconds"),
    )
}

# The HTTP status of each refusal of the store and the story service (the most specific
# class listed wins; anything else is a 400).
STATUSES: dict[type[StoreError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Invalid: 422,
    Unsuitable: 422,
    Conflict: 409,
    Unavailable: 503,
    TooMany: 429,
}


def status_of(exc: StoreError) -> int:
    return next((STATUSES[k] for k in type(exc).__mro__ if k in STATUSES), 400)


def store_error_response(exc: StoreError) -> JSONResponse:
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return error_response(status_of(exc), exc.code, exc.message, **headers)


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def validation_message(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path"))
        msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) + ". Fix the request and send it again."


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        return store_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_input", validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        message = {
            404: "There is nothing at this address. Check the URL.",
            405: "This address does not take that method.",
        }.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), message)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(
            500, "internal", "Something went wrong on our side. Please try again in a moment."
        )
