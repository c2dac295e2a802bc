"""The one interface every picture provider (jimeng-api, Volcengine Ark) offers.

The illustrator asks a provider for one picture and gets the URL to download it
from; it never knows which upstream drew it, except for the cost record, which
counts calls per provider by `Provider.name`.

A provider raises `ImageError` for every failure, already classified: the code the
reader sees, whether another attempt may succeed, whether the refusal was the
content policy (worth one softened prompt), and whether the request reached the
upstream at all (only those are counted as calls, and only those may be paid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

Checks = dict[str, str]


@dataclass
class ImageError(Exception):
    code: str  # reaches the reader (services.common.errors)
    message: str  # for the operator's log: what happened and what to do
    retryable: bool = False
    policy: bool = False  # content policy: worth one retry with a softened prompt

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class Tally:
    """What one attempt cost: upstream calls that reached the provider, pictures kept."""

    calls: int = 0
    pictures: int = 0


class Provider(Protocol):
    # "jimeng" or "ark": the cost record's word for who was paid.
    name: str

    async def draw(self, *, prompt: str, ratio: str, reference: str | None, tally: Tally) -> str:
        """Draw one picture and return the URL to download it from at once.

        `reference` is the character sheet as a data URI (None: from text alone).
        `tally.calls` grows by one for every request that reached the upstream.
        """
        ...

    async def start(self) -> None:
        """Open what the provider keeps open (a watcher, a client); called once."""
        ...

    async def readiness(self) -> Checks:
        """Named checks for /readyz: "ok", "ok (remark)", or what is wrong and how to fix it."""
        ...

    async def close(self) -> None: ...
