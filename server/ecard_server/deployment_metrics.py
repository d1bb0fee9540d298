"""What a deployment reports of its own state when Prometheus scrapes (the calls' counts are rpc.metrics'):

    ecard_card_cache_hits_total, ecard_card_cache_misses_total   lookups served from memory or not (counters:
                                                                  a ratio over any window is a rate() away)
    ecard_card_cache_entries                                     e-cards held in the card cache
    ecard_nonces_held                                            consumed nonces held in memory (embedded)
    ecard_redis_keys, ecard_redis_used_memory_bytes,
    ecard_redis_maxmemory_bytes                                  the nonce Redis (shared deployments)
    ecard_change_bus_connected                                   1 while cache invalidations arrive

Every value is read at scrape time; nothing here is on a call's path.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ecard.errors import Unavailable
from ecard_server.rpc import metrics


class _Every:
    """A reading taken at most once per `seconds` (one Redis round trip for the three Redis gauges)."""

    def __init__(self, read: Callable[[], dict[str, float]], seconds: float = 1.0) -> None:
        self._read, self._seconds = read, seconds
        self._at = -math.inf
        self._value: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> float:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self._seconds:
                try:
                    self._value = self._read()
                except Unavailable:
                    self._value = {}
                self._at = now
            return self._value.get(name, math.nan)


def watch_deployment(deployment: Any) -> None:
    """Registers the readings of `deployment` (an app.Deployment) with the process's metrics."""
    cache = deployment.card_cache
    metrics.watch("ecard_card_cache_hits_total", "Card lookups served from memory", lambda: float(cache.hits),
                  counter=True)
    metrics.watch("ecard_card_cache_misses_total", "Card lookups that read the store", lambda: float(cache.misses),
                  counter=True)
    metrics.watch("ecard_card_cache_entries", "E-cards held in the card cache", lambda: float(len(cache)))
    nonces = deployment.nonces
    if hasattr(nonces, "__len__"):
        metrics.watch("ecard_nonces_held", "Consumed nonces held in memory", lambda: float(len(nonces)))
    if hasattr(nonces, "usage"):
        usage = _Every(nonces.usage)
        metrics.watch("ecard_redis_keys", "Keys in the nonce Redis database (NaN: Redis did not answer)",
                      lambda: usage.get("keys"))
        metrics.watch("ecard_redis_used_memory_bytes", "Memory the nonce Redis uses", lambda: usage.get("used_memory"))
        metrics.watch("ecard_redis_maxmemory_bytes", "The nonce Redis's maxmemory (0: no limit)",
                      lambda: usage.get("maxmemory"))
    connected = getattr(deployment.bus, "connected", None)
    if connected is not None:
        metrics.watch("ecard_change_bus_connected", "1 while this process receives cache invalidations, else 0",
                      lambda: 1.0 if connected.is_set() else 0.0)
