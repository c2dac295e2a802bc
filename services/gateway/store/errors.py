"""What the store refuses, and why: domain errors with a code and a sentence to act on.

They carry no HTTP status; the API maps each kind to one (services.gateway.api.errors).
"""

from __future__ import annotations


class StoreError(Exception):
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StoreError):
    code = "not_found"


class Forbidden(StoreError):
    """The story exists but the token given is not its own."""

    code = "forbidden"


class Invalid(StoreError):
    code = "invalid_input"


class Unsuitable(StoreError):
    """Refused with a kind sentence that suggests another idea, never a bare error."""

    code = "unsuitable_idea"


class Conflict(StoreError):
    """Not now: the story is not in a state that allows it."""

    code = "conflict"


class Unavailable(StoreError):
    """Nothing was done; the same request later will do (after `retry_after` seconds)."""

    code = "busy"
    retry_after = 5


class TooMany(StoreError):
    """This client asked too often; it may ask again after `retry_after` seconds."""

    code = "rate_limited"
    retry_after = 60
