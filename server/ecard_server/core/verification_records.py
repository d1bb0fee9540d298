"""What a Verify answered, by (merchant, request_id): a POS whose Verify timed out asks it back.

Only calls that carry a request_id are recorded (the SDK gives every Verify one). Records live about
the verification window: past it an accepted answer could not be settled anyway. A merchant finds
only its own records: the key holds the merchant id, so another merchant's request_id is simply not
there. The answer is kept as the bytes of the response message; this module does not read them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class VerificationRecords(Protocol):
    def record(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        """Keeps `answer` for (merchant_id, request_id), replacing an earlier one. Raises
        ecard.errors.Unavailable when the store cannot be written."""

    async def record_async(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        """`record` for an event loop: never blocks it."""

    def find(self, merchant_id: str, request_id: str) -> bytes | None:
        """The answer kept for (merchant_id, request_id), or None. Raises ecard.errors.Unavailable."""


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
