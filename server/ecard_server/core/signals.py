"""Wake-ups for calls that wait on the event loop for a change another process may make: an open
WatchEvents stream (a channel's outbox grew) and a GetCounterBinding long poll (a binding completed).

Listens on the change bus: a notice (kind, key) sets the asyncio events of the waiters of that
(kind, key), from whichever thread delivers it; (ALL, ALL), said when notices may have been missed,
wakes every waiter. A waiter reads its state again when woken, and also on its own every so often.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ecard_server.core import events

_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Event]


class Signals:
    def __init__(self) -> None:
        self._waiters: dict[tuple[str, str], set[_Waiter]] = {}
        self._lock = threading.Lock()
        self.closing = False
        """The server is draining: endless waits (streams) end, so that their clients move on."""

    def on_change(self, kind: str, key: str) -> None:
        with self._lock:
            if kind == events.ALL:
                waiters = [w for ws in self._waiters.values() for w in ws]
            else:
                waiters = list(self._waiters.get((kind, key), ()))
        for loop, wake in waiters:
            loop.call_soon_threadsafe(wake.set)

    def close(self) -> None:
        self.closing = True
        self.on_change(events.ALL, events.ALL)

    @asynccontextmanager
    async def waiter(self, kind: str, key: str) -> AsyncIterator[asyncio.Event]:
        """An asyncio event set whenever a notice (kind, key) arrives, while the block runs."""
        wake = asyncio.Event()
        entry = (asyncio.get_running_loop(), wake)
        with self._lock:
            self._waiters.setdefault((kind, key), set()).add(entry)
        try:
            yield wake
        finally:
            with self._lock:
                held = self._waiters.get((kind, key))
                if held is not None:
                    held.discard(entry)
                    if not held:
                        del self._waiters[(kind, key)]

    def waiting(self) -> int:
        with self._lock:
            return sum(len(ws) for ws in self._waiters.values())
