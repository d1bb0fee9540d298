"""Change notices published from a thread of their own, so that the call that caused them does not wait.

A Settle that wrote channel events tells the channels once it has committed: the notice wakes their
open streams on every replica (the Redis change bus: a round trip to Redis, about 0.7 ms, which the
Settle's caller would otherwise wait for). NoticePublisher takes the notice and returns; its thread
hands what it was told to the bus. A notice told again before the thread gets to it is published
once: it only wakes streams, which then read every event committed before it from the store (the
rows are the truth; a stream also polls), so one notice after the last commit wakes them for all.
"""

from __future__ import annotations

import logging
import threading

from ecard_server.core.ports import ChangeBus
from ecard_server.logs import event

log = logging.getLogger("ecard.notices")


class NoticePublisher:
    """`publish(kind, key)` returns at once; a thread publishes each pending (kind, key) once, in the
    order first told, on `bus`. `close` publishes what is still pending before it returns."""

    def __init__(self, bus: ChangeBus, *, name: str = "ecard-notices") -> None:
        self._bus = bus
        self._pending: dict[tuple[str, str], None] = {}  # an ordered set
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def publish(self, kind: str, key: str) -> None:
        with self._ready:
            if not self._closed:
                if not self._pending:
                    self._ready.notify()
                self._pending[(kind, key)] = None
                return
        self._bus.publish(kind, key)  # closed (the server is stopping): on the caller's thread

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending and not self._closed:
                    self._ready.wait()
                if not self._pending:
                    return
                told, self._pending = list(self._pending), {}
            for kind, key in told:
                try:
                    self._bus.publish(kind, key)  # a bus that cannot reach Redis keeps the notice itself
                except Exception:
                    event(log, "change_notice_failed", level=logging.ERROR, exc_info=True, kind=kind)
