"""The audit trail of verifications: recorded off the hot path, written in batches by one thread.

Card status changes, credits and settlements are audited inside their own transactions; a Verify
only appends to a queue here, and the writer thread stores the queue every `interval` seconds.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence

from ecard.errors import Unavailable

log = logging.getLogger("ecard.audit")
Event = tuple[int, str, str, str, str]


class AuditTrail:
    def __init__(
        self,
        write: Callable[[Sequence[Event]], None],
        *,
        interval: float = 0.5,
        max_pending: int = 200_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._write = write
        self._interval = interval
        self._clock = clock
        self._pending: collections.deque[Event] = collections.deque(maxlen=max_pending)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ecard-audit", daemon=True)
        self._thread.start()
        self.dropped = 0

    def record(self, kind: str, actor: str, subject: str, detail: str) -> None:
        pending = self._pending
        if len(pending) == pending.maxlen:
            self.dropped += 1  # the store has been down for long; counting beats blocking Verify
        pending.append((int(self._clock()), kind, actor, subject, detail))

    def flush(self) -> None:
        pending = self._pending
        batch = [pending.popleft() for _ in range(len(pending))]
        if not batch:
            return
        try:
            self._write(batch)
        except Unavailable:
            pending.extendleft(reversed(batch))
            log.warning('{"event":"audit_deferred","rows":%d}', len(batch))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
