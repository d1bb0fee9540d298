"""Counters settling by token against one server until it is killed: what each attempted and what was
acknowledged, for the tests that SIGKILL a server under a settlement load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ecard import ClientOptions, EcardError, PharmacyClient, RetryConfig
from ecard.testing import World


class SettleLoad:
    """`counters` threads settling `items` by token on `target`, one attempt per call (no retry), each
    under a new idempotency key, until the server stops answering."""

    def __init__(self, world: World, target: str, items: Sequence[Any], *, counters: int = 4,
                 timeout: float = 2.0, **mint: Any) -> None:
        self.world, self.target, self.items, self.counters, self.mint = world, target, items, counters, mint
        self.options = ClientOptions(timeout=timeout, retry=RetryConfig(max_attempts=1))
        self.acknowledged: dict[str, str] = {}  # idempotency key -> settlement id
        self.attempted: dict[str, str] = {}  # idempotency key -> token
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _counter(self, n: int) -> None:
        with PharmacyClient(self.target, merchant_id=self.world.pharmacy_id, options=self.options) as pos:
            for k in range(10_000):
                if self._stop.is_set():
                    return
                key, token = f"k-{n}-{k}", self.world.mint(0, **self.mint)
                with self._lock:
                    self.attempted[key] = token
                try:
                    record = pos.settle(self.items, idempotency_key=key, token=token)
                except EcardError:
                    return  # the server is gone
                with self._lock:
                    self.acknowledged[key] = record.settlement_id

    def run(self, kill: Callable[[], None], *, after: int, within: float = 30.0) -> None:
        """Runs the counters, calls `kill` once `after` settlements were acknowledged, waits for them."""
        with ThreadPoolExecutor(self.counters) as pool:
            running = [pool.submit(self._counter, n) for n in range(self.counters)]
            deadline = time.monotonic() + within
            while len(self.acknowledged) < after and time.monotonic() < deadline:
                time.sleep(0.01)
            kill()
            self._stop.set()
            for future in running:
                future.result()

    @property
    def cut(self) -> list[str]:
        """The keys attempted and never acknowledged: in flight when the server died."""
        return sorted(set(self.attempted) - set(self.acknowledged))
