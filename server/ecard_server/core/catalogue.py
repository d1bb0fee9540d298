"""This process's copy of the current drug catalogue, for pricing baskets.

Loaded whole from the store (a dict by code: a 20-line basket is 20 lookups), dropped on a
("catalogue", version) change notice, which an import publishes to every replica. A settlement
checks in its own transaction that the version it was priced with is still the current one
(storage.ledger), so a missed notice costs a reload and a re-pricing, never a basket priced with an
old catalogue.
"""

from __future__ import annotations

import threading
from typing import Protocol

from ecard_server.core import events
from ecard_server.core.records import NO_CATALOGUE, Catalogue


class CatalogueSource(Protocol):
    def current_catalogue(self) -> Catalogue: ...


class CatalogueBook:
    def __init__(self, store: CatalogueSource) -> None:
        self._store = store
        self._catalogue = NO_CATALOGUE
        self._generation = 0
        self._loaded_generation = -1
        self._lock = threading.Lock()

    def on_change(self, kind: str, key: str) -> None:
        if kind in (events.CATALOGUE, events.ALL):
            self._generation += 1

    def current(self) -> Catalogue:
        if self._generation != self._loaded_generation:
            with self._lock:
                generation = self._generation
                if generation != self._loaded_generation:
                    self._catalogue = self._store.current_catalogue()
                    self._loaded_generation = generation
        return self._catalogue

    def reload(self) -> Catalogue:
        """The current catalogue read again (a settlement found its version was not the current one)."""
        self._generation += 1
        return self.current()
