"""Change notices that keep every process's caches fresh.

The core's services publish ("card", ecard_id), ("key", issuer_id), ("merchant", merchant_id) or
("issuer", id) after the store's transaction commits; ("card", ALL) or (ALL, ALL) drop a whole cache.
The local bus delivers at once to this process; the Redis bus (storage.redis_state.RedisChangeBus)
also delivers to every other process sharing the deployment, and (ALL, ALL) to this process's
caches while Redis is out of reach, since notices may have been missed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

Listener = Callable[[str, str], None]

CARD = "card"
KEY = "key"
ISSUER = "issuer"
MERCHANT = "merchant"
ALL = "*"  # key meaning "everything of this kind"


class ChangeBus(Protocol):
    def subscribe(self, listener: Listener) -> None: ...

    def publish(self, kind: str, key: str) -> None: ...

    def close(self) -> None: ...


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
