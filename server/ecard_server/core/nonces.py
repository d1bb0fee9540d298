"""Single use: a token's nonce is consumed once, deployment-wide, and remembered until it expires.

The store is core.ports.NonceStore (in process: storage.memory.MemoryNonceStore; shared: Redis).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from ecard_server.core.ports import NonceStore, Store


def nonce_key(issuer_id: str, nonce: bytes) -> bytes:
    """The store key of a token's nonce: nonces are unique per issuer."""
    return issuer_id.encode() + b"\x00" + nonce


def spender(merchant_id: str, idempotency_key: str) -> bytes:
    """What a Settle by token leaves as its nonce's value (NonceStore.consume_as): its merchant and
    idempotency key, hashed to 16 bytes behind a 's' (a Verify's value is '1', never equal to it)."""
    digest = hashlib.blake2b(f"{merchant_id}\x00{idempotency_key}".encode(), digest_size=16).digest()
    return b"s" + digest


def consume_many(store: NonceStore, items: Sequence[tuple[bytes, float]]) -> list[bool]:
    """`consume` of each (key, expires_at) in order, in one call where the store offers
    `consume_many` (one lock, one round trip); a key repeated in `items` is fresh only the first time."""
    many = getattr(store, "consume_many", None)
    if many is not None:
        return many(items)  # type: ignore[no-any-return]
    return [store.consume(key, expires_at) for key, expires_at in items]


# -- an in-process nonce set across restarts (no Redis: the embedded default, --single-instance) ----------
# The store's meta row RUNNING_SINCE is set while a process holds consumed nonces in memory only; a clean
# stop replaces it with SNAPSHOT (the live nonces), which the next process reads back. A start that finds
# RUNNING_SINCE set met a process that died without saving: what it consumed is unknown, so every token
# issued before now (plus the clock skew a channel may have) is refused as REPLAYED: it may have been used.
RUNNING_SINCE = "nonces_in_memory_since"
SNAPSHOT = "nonces_in_memory_snapshot"


class RememberedNonces(Protocol):
    forgotten_until: float

    def snapshot(self) -> bytes: ...
    def restore(self, blob: bytes) -> int: ...


def remember_across_restarts(store: Store, nonces: RememberedNonces, *, skew_s: int, now: float) -> bool:
    """Takes over what the last process on `store` consumed: its snapshot after a clean stop; after a
    crash, `nonces.forgotten_until` = now + skew_s. Marks this process as running. True when the last
    process's nonces were lost (a crash)."""
    lost = store.meta_value(RUNNING_SINCE) is not None
    blob = store.meta_value(SNAPSHOT)  # also left by a crash between a restore and its scrub
    if blob and not lost:
        try:
            nonces.restore(blob)
        except ValueError:  # unreadable: as good as lost
            lost = True
    if lost:
        nonces.forgotten_until = now + skew_s
    store.set_meta_value(RUNNING_SINCE, str(int(now)).encode())
    if blob is not None:
        store.scrub_meta_value(SNAPSHOT)
    return lost


def save_for_restart(store: Store, nonces: RememberedNonces) -> None:
    """At a clean stop, once no call runs any more: the live nonces for the next process."""
    store.set_meta_value(SNAPSHOT, nonces.snapshot())
    store.scrub_meta_value(RUNNING_SINCE)
