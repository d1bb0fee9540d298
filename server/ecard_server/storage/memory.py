"""In-memory implementations of the core's ports, the embedded default (one process, nothing shared).

    MemoryNonceStore           core.ports.NonceStore: an expiring, bounded set
    MemoryVerificationRecords  core.ports.VerificationRecords: what a Verify answered, by request_id
    LocalChangeBus             core.ports.ChangeBus: notices delivered to this process only

Their shared-deployment counterparts are in storage.redis_state and storage.redis_records.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence
from heapq import heappush

from ecard.errors import Unavailable
from ecard_server.core.ports import Listener


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


class MemoryVerificationRecords:
    """The embedded default: a dictionary in insertion order, oldest first, bounded by `capacity`
    (the oldest record leaves first when full) and by `ttl_s` (a record older is never answered)."""

    def __init__(self, ttl_s: float, capacity: int = 200_000, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl_s
        self._capacity = max(1, capacity)
        self._clock = clock
        self._records: dict[tuple[str, str], tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def record(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        key = (merchant_id, request_id)
        now = self._clock()
        records = self._records
        with self._lock:
            records.pop(key, None)  # a replaced record moves to the young end
            records[key] = (now + self._ttl, answer)
            # At most two of the oldest leave per record: the dictionary never outgrows what arrives.
            for _ in range(2):
                if not records:
                    break
                oldest = next(iter(records))
                if len(records) > self._capacity or records[oldest][0] <= now:
                    del records[oldest]
                else:
                    break

    async def record_async(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        self.record(merchant_id, request_id, answer)  # a dictionary: nothing to wait for

    def find(self, merchant_id: str, request_id: str) -> bytes | None:
        with self._lock:
            found = self._records.get((merchant_id, request_id))
        if found is None or found[0] <= self._clock():
            return None
        return found[1]


class LocalChangeBus:
    """Delivers each notice synchronously to this process's listeners."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def publish(self, kind: str, key: str) -> None:
        self.deliver(kind, key)

    def deliver(self, kind: str, key: str) -> None:
        for listener in list(self._listeners):
            listener(kind, key)

    def close(self) -> None:
        self._listeners.clear()
