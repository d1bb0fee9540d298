"""Single use: a token's nonce is consumed once, deployment-wide, and remembered until it expires."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Sequence
from heapq import heappush
from typing import Protocol

from ecard.errors import Unavailable


class NonceStore(Protocol):
    @property
    def local(self) -> bool:
        """Consumption never leaves this process (nothing to await): Verify may run whole on the loop."""
        ...

    def consume(self, key: bytes, expires_at: float) -> bool:
        """Marks `key` used until `expires_at` (unix seconds). True if it was not used before.

        Raises ecard.errors.Unavailable when the store cannot answer: the caller must fail closed.
        """

    async def consume_async(self, key: bytes, expires_at: float) -> bool:
        """`consume` for an event loop: it never blocks the loop (same answers, same errors)."""

    def release(self, key: bytes) -> bool:
        """Forgets a consumption whose purpose failed for want of a store (a Settle whose transaction
        could not run), so the holder's code works again. True if it was forgotten; never raises."""


def nonce_key(issuer_id: str, nonce: bytes) -> bytes:
    """The store key of a token's nonce: nonces are unique per issuer."""
    return issuer_id.encode() + b"\x00" + nonce


def consume_many(store: NonceStore, items: Sequence[tuple[bytes, float]]) -> list[bool]:
    """`consume` of each (key, expires_at) in order, in one call where the store offers
    `consume_many` (one lock, one round trip); a key repeated in `items` is fresh only the first time."""
    many = getattr(store, "consume_many", None)
    if many is not None:
        return many(items)  # type: ignore[no-any-return]
    return [store.consume(key, expires_at) for key, expires_at in items]


class MemoryNonceStore:
    """The embedded default: an expiring set in this process, bounded by `capacity`.

    Entries leave when their token could no longer pass the time checks anyway. When the set is full
    of live entries, consume fails closed (Unavailable) instead of forgetting a nonce early.
    """

    local = True

    def __init__(self, capacity: int = 2_000_000, clock=time.time) -> None:
        self._capacity = capacity
        self._clock = clock
        self._expiry: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def consume(self, key: bytes, expires_at: float) -> bool:
        with self._lock:
            now = self._clock()
            heap, expiry = self._heap, self._expiry
            if heap and heap[0][0] <= now:
                self._expire(now)
            known = expiry.get(key)
            if known is not None and known > now:
                return False
            if len(expiry) >= self._capacity:
                raise Unavailable("nonce store is full", "NONCE_STORE_FULL")
            expiry[key] = expires_at
            heappush(heap, (expires_at, key))
            return True

    async def consume_async(self, key: bytes, expires_at: float) -> bool:
        return self.consume(key, expires_at)  # a dictionary and a heap: nothing to wait for

    def consume_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        with self._lock:
            now = self._clock()
            if self._heap and self._heap[0][0] <= now:
                self._expire(now)
            insert = self._insert
            return [insert(key, expires_at, now) for key, expires_at in items]

    def release(self, key: bytes) -> bool:
        with self._lock:
            return self._expiry.pop(key, None) is not None  # its heap entry expires harmlessly

    def _expire(self, now: float) -> None:
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] <= now:
            _, old = heapq.heappop(heap)
            if expiry.get(old, now + 1) <= now:
                del expiry[old]

    def _insert(self, key: bytes, expires_at: float, now: float) -> bool:
        known = self._expiry.get(key)
        if known is not None and known > now:
            return False
        if len(self._expiry) >= self._capacity:
            raise Unavailable("nonce store is full", "NONCE_STORE_FULL")
        self._expiry[key] = expires_at
        heappush(self._heap, (expires_at, key))
        return True
