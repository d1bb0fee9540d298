"""Storage backends: `SqlStore` (storage.sql) implements the core's interfaces (core.ports.Store).

`open_store(url)` picks the backend: `sqlite:///PATH` (the embedded default) or `postgresql://...`.
"""

from __future__ import annotations

from ecard_server.storage.sql import SqlStore
from ecard_server.storage.urls import redacted


def open_store(url: str) -> SqlStore:
    """Opens (and migrates) the store named by `url`. Raises ValueError for an unusable URL."""
    if url.startswith("sqlite://"):
        from ecard_server.storage.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        from ecard_server.storage.postgres import PostgresStore

        return PostgresStore.from_url(url)
    raise ValueError(f"unsupported database URL {redacted(url)!r}: use sqlite:///PATH or postgresql://...")


__all__ = ["SqlStore", "open_store"]
