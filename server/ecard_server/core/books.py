"""This process's copy of what prices baskets: the current drug catalogue and benefit policy.

Each is loaded whole from the store (the catalogue as a dict by code: a 20-line basket is 20
lookups), dropped on its change notice, which an import publishes to every replica. A settlement
checks in its own transaction that the versions it was priced with are still the current ones
(storage.ledger), so a missed notice costs a reload and a re-pricing, never a basket priced with an
old catalogue or policy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from ecard_server.core import events

T = TypeVar("T")


class CurrentBook(Generic[T]):
    """The current version of one versioned thing, from `load`, reloaded after a `kind` notice."""

    def __init__(self, load: Callable[[], T], kind: str, empty: T) -> None:
        self._load = load
        self._kind = kind
        self._value = empty
        self._generation = 0
        self._loaded_generation = -1
        self._lock = threading.Lock()

    def on_change(self, kind: str, key: str) -> None:
        if kind in (self._kind, events.ALL):
            self._generation += 1

    def current(self) -> T:
        if self._generation != self._loaded_generation:
            with self._lock:
                generation = self._generation
                if generation != self._loaded_generation:
                    self._value = self._load()
                    self._loaded_generation = generation
        return self._value

    def reload(self) -> T:
        """Read again (a settlement found its version was not the current one)."""
        self._generation += 1
        return self.current()
