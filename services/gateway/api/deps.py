"""What the routes share: the app's parts as dependencies, the bearer token, and the
checks every JSON body passes before FastAPI reads it as the route's typed model."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request, Response
from fastapi.routing import APIRoute

from services.gateway.api.errors import ApiError
from services.gateway.store.repo import Store
from services.gateway.stories import StoryService, unstorable


def get_service(request: Request) -> StoryService:
    service: StoryService = request.app.state.service
    return service


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


ServiceDep = Annotated[StoryService, Depends(get_service)]
StoreDep = Annotated[Store, Depends(get_store)]


def bearer(authorization: Annotated[str | None, Header()] = None) -> str:
    if not authorization:
        raise ApiError(
            401,
            "unauthorized",
            "This call needs the story's token: send the header 'Authorization: Bearer <token>'.",
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "The Authorization header must be 'Bearer <token>'.")
    return token.strip()


TokenDep = Annotated[str, Depends(bearer)]


async def authorized(story_id: str, token: TokenDep, store: StoreDep) -> str:
    """The story's id, once the token is its own (401/403/404 otherwise)."""
    await store.authorize(story_id, token)
    return story_id


StoryDep = Annotated[str, Depends(authorized)]

# A page number in a path: far above any story's length, far below what a database
# integer holds (an overflowing one must be a 422, not a dropped connection).
PageNumber = Annotated[int, Path(ge=0, le=10_000)]


def _json_only(request: Request) -> None:
    # A form or text/plain POST can be sent by any web page without asking first;
    # a JSON one cannot. So state-changing calls take JSON and nothing else.
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"This call takes a JSON body, not {ctype or 'a body without a type'}; "
            "send it with the header 'Content-Type: application/json'.",
        )


async def check_json_body(request: Request) -> None:
    """Every bad body gets the same clear error, not FastAPI's 400 for what it cannot parse
    (too deep, numbers longer than Python converts) nor a database error later."""
    _json_only(request)
    raw = await request.body()  # kept by the request: FastAPI reads it again from there
    try:
        data = json.loads(raw or b"null")
    except RecursionError:
        raise ApiError(
            422, "invalid_input", "The body is nested too deeply; send a flat JSON object."
        ) from None
    except (ValueError, UnicodeDecodeError):
        # ValueError also covers numbers with more digits than Python converts.
        raise ApiError(422, "invalid_input", "The body is not valid JSON; send a JSON object.") from None
    if (problem := unstorable(data)) is not None:
        raise ApiError(422, "invalid_input", f"The body {problem}; remove it and send it again.")
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_input", 'The body must be a JSON object, e.g. {"premise": "..."}.')


class JsonBodyRoute(APIRoute):
    """A route whose typed body is checked by `check_json_body` first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle

        async def checked(request: Request) -> Response:
            await check_json_body(request)
            return await handle(request)

        return checked
