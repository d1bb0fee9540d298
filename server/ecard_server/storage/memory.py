"""In-memory implementations of the core's ports, the embedded default (one process, nothing shared).

    MemoryNonceStore           core.ports.NonceStore: an expiring, bounded set
    MemoryVerificationRecords  core.ports.VerificationRecords: what a Verify answered, by request_id
    LocalChangeBus             core.ports.ChangeBus: notices delivered to this process only

Their shared-deployment counterparts are in storage.redis_nonces, redis_bus and redis_records.
"""

from __future__ import annotations

import heapq
import struct
import threading
import time
from collections.abc import Callable, Sequence
from heapq import heappush

from ecard.errors import Unavailable
from ecard_server.core.ports import KeptAnswer, Listener, VerificationRecords


class MemoryNonceStore:
    """The embedded default: an expiring set in this process, bounded by `capacity`.

    Entries leave when their token could no longer pass the time checks anyway. When the set is full
    of live entries, consume fails closed (Unavailable) instead of forgetting a nonce early.

    It lives as long as its process: `snapshot` and `restore` carry it over a clean restart, and
    `forgotten_until` (core.nonces.remember_across_restarts) says which tokens a process that died
    without a snapshot may have consumed.
    """

    local = True

    def __init__(
        self, capacity: int = 2_000_000, clock=time.time, *, records: VerificationRecords | None = None
    ) -> None:
        """`records`: the VerificationRecords that consume keeps an answer in (its `keep`)."""
        self._capacity = capacity
        self._clock = clock
        self._records = records
        self.forgotten_until = 0.0  # tokens issued at or before it may have been consumed unknown to this set
        self._expiry: dict[bytes, float] = {}
        self._spenders: dict[bytes, bytes] = {}  # who consumed a nonce, for those consumed by a Settle
        self._heap: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def consume(self, key: bytes, expires_at: float, keep: KeptAnswer | None = None) -> bool:
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
        if keep is not None:
            if self._records is None:
                raise TypeError("consume(keep=...) needs a store made with its verification records")
            self._records.record(*keep)
        return True

    def consume_as(self, key: bytes, expires_at: float, spender: bytes) -> bool:
        with self._lock:
            now = self._clock()
            if self._heap and self._heap[0][0] <= now:
                self._expire(now)
            if self._insert(key, expires_at, now):
                self._spenders[key] = spender
                return True
            return self._spenders.get(key) == spender

    def consume_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        with self._lock:
            now = self._clock()
            if self._heap and self._heap[0][0] <= now:
                self._expire(now)
            insert = self._insert
            return [insert(key, expires_at, now) for key, expires_at in items]

    def release(self, key: bytes) -> bool:
        with self._lock:
            self._spenders.pop(key, None)
            return self._expiry.pop(key, None) is not None  # its heap entry expires harmlessly

    def snapshot(self) -> bytes:
        """The live entries, as bytes that `restore` reads back (each: expiry, key, spender)."""
        with self._lock:
            now = self._clock()
            parts = [_SNAPSHOT_VERSION]
            for key, expires_at in self._expiry.items():
                if expires_at > now:
                    spender = self._spenders.get(key, b"")
                    parts.append(_ENTRY.pack(expires_at, len(key), len(spender)) + key + spender)
            return b"".join(parts)

    def restore(self, blob: bytes) -> int:
        """Adds the live entries of a `snapshot`; returns how many. Raises ValueError on bytes that are
        not a snapshot (nothing is added then)."""
        if blob[:1] != _SNAPSHOT_VERSION:
            raise ValueError("not a nonce snapshot")
        entries, at = [], 1
        try:
            while at < len(blob):
                expires_at, key_len, spender_len = _ENTRY.unpack_from(blob, at)
                at += _ENTRY.size
                key, spender = blob[at:at + key_len], blob[at + key_len:at + key_len + spender_len]
                at += key_len + spender_len
                if len(key) != key_len or len(spender) != spender_len:
                    raise ValueError("nonce snapshot is truncated")
                entries.append((expires_at, key, spender))
        except struct.error as exc:
            raise ValueError("nonce snapshot is truncated") from exc
        with self._lock:
            now = self._clock()
            live = [(expires_at, key, spender) for expires_at, key, spender in entries if expires_at > now]
            for expires_at, key, spender in live:
                self._insert(key, expires_at, now)
                if spender:
                    self._spenders[key] = spender
            return len(live)

    def _expire(self, now: float) -> None:
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] <= now:
            _, old = heapq.heappop(heap)
            if expiry.get(old, now + 1) <= now:
                del expiry[old]
                if self._spenders:
                    self._spenders.pop(old, None)

    def _insert(self, key: bytes, expires_at: float, now: float) -> bool:
        known = self._expiry.get(key)
        if known is not None and known > now:
            return False
        if len(self._expiry) >= self._capacity:
            raise Unavailable("nonce store is full", "NONCE_STORE_FULL")
        self._expiry[key] = expires_at
        heappush(self._heap, (expires_at, key))
        return True


_SNAPSHOT_VERSION = b"\x01"
_ENTRY = struct.Struct("<dHB")  # expiry (unix seconds), key length, spender length (then key, spender)


class MemoryVerificationRecords:
    """The embedded default: per merchant, a dictionary in insertion order, oldest first, bounded by
    `per_merchant` and by `ttl_s` (a record older is never answered), and all merchants together by
    `capacity`. Whichever bound is reached, the recording merchant's own oldest record leaves (or, if it
    has none, the new record is not kept): one merchant's records never push out another's."""

    def __init__(
        self, ttl_s: float, capacity: int = 200_000, clock: Callable[[], float] = time.time, *,
        per_merchant: int = 50_000,
    ) -> None:
        self._ttl = ttl_s
        self._capacity = max(1, capacity)
        self._per_merchant = max(1, per_merchant)
        self._clock = clock
        self._records: dict[str, dict[str, tuple[float, bytes]]] = {}
        self._count = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def record(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        now = self._clock()
        with self._lock:
            own = self._records.get(merchant_id)
            if own is None:
                own = self._records[merchant_id] = {}
            if own.pop(request_id, None) is not None:  # a replaced record moves to the young end
                self._count -= 1
            # The expired leave, at most two per record (the dictionary never outgrows what arrives),
            # then this merchant's oldest while it is over a bound.
            for _ in range(2):
                if own and own[next(iter(own))][0] <= now:
                    del own[next(iter(own))]
                    self._count -= 1
            if self._count >= self._capacity:
                self._sweep(now)
                self._records.setdefault(merchant_id, own)
            while own and (len(own) >= self._per_merchant or self._count >= self._capacity):
                del own[next(iter(own))]
                self._count -= 1
            if self._count >= self._capacity:
                return  # full of other merchants' records: theirs stay, this one is not kept
            own[request_id] = (now + self._ttl, answer)
            self._count += 1

    def _sweep(self, now: float) -> None:
        """Drops every merchant's expired records (when full: other merchants' may be all past)."""
        for merchant_id, own in list(self._records.items()):
            while own and own[next(iter(own))][0] <= now:
                del own[next(iter(own))]
                self._count -= 1
            if not own:
                del self._records[merchant_id]

    def find(self, merchant_id: str, request_id: str) -> bytes | None:
        with self._lock:
            found = self._records.get(merchant_id, {}).get(request_id)
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
