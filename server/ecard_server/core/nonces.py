"""Single use: a token's nonce is consumed once, deployment-wide, and remembered until it expires."""

from __future__ import annotations

import heapq
import threading
import time
from typing import Protocol

from ecard.errors import Unavailable


class NonceStore(Protocol):
    def consume(self, key: bytes, expires_at: float) -> bool:
        """Marks `key` used until `expires_at` (unix seconds). True if it was not used before.

        Raises ecard.errors.Unavailable when the store cannot answer: the caller must fail closed.
        """


class MemoryNonceStore:
    """The embedded default: an expiring set in this process, bounded by `capacity`.

    Entries leave when their token could no longer pass the time checks anyway. When the set is full
    of live entries, consume fails closed (Unavailable) instead of forgetting a nonce early.
    """

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
            heap = self._heap
            while heap and heap[0][0] <= now:
                _, old = heapq.heappop(heap)
                if self._expiry.get(old, now + 1) <= now:
                    del self._expiry[old]
            known = self._expiry.get(key)
            if known is not None and known > now:
                return False
            if len(self._expiry) >= self._capacity:
                raise Unavailable("nonce store is full", "NONCE_STORE_FULL")
            self._expiry[key] = expires_at
            heapq.heappush(heap, (expires_at, key))
            return True
