"""Single use: a token's nonce is consumed once, deployment-wide, and remembered until it expires.

The store is core.ports.NonceStore (in process: storage.memory.MemoryNonceStore; shared: Redis).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ecard_server.core.ports import NonceStore


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
