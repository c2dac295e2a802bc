"""The story store, one class for its callers, built from one module per job.

base      engines, transactions, and what every job shares
commands  what a reader asks of a story
results   what the workers report, applied once
reads     the reader's view, replay, library and sharing
usage     what stories cost
outbox    work waiting to be published
"""

from __future__ import annotations

from services.common.media import media_url
from services.gateway.store.base import Changes, hash_token
from services.gateway.store.commands import Commands
from services.gateway.store.errors import NotFound, StoreError
from services.gateway.store.outbox import OutboxRows
from services.gateway.store.reads import Reads
from services.gateway.store.results import Results
from services.gateway.store.usage import UsageReads

# The store's errors live in store.errors; these two are also here for older callers.
__all__ = ["Changes", "NotFound", "Store", "StoreError", "hash_token", "media_url"]


class Store(Commands, Results, Reads, UsageReads, OutboxRows):
    """Every job of the store on one pair of engines (see each module)."""
