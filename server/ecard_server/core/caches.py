"""Hot read caches for Verify: parsed issuer keys, merchants, and card status with bindings.

Each cache is filled from the store and dropped on a change notice. A generation counter closes the
race where a reader loads a row, a writer commits and invalidates, and the reader then caches the
old row: a load started before an invalidation is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass, replace

from ecard.keys import (
    KeyFormatError,
    SignatureCheck,
    key_material,
    load_public_key_pem,
    signature_check,
    weak_public_key,
)
from ecard_server.core import events
from ecard_server.core.identity import mask_name
from ecard_server.core.ports import ReadStore
from ecard_server.core.records import Card, IssuerKey, Merchant


class CacheMiss(Exception):
    """A cached-only lookup (`cached_only=True`) that would have to read the store: code on an event loop
    catches it and runs the whole operation on a thread instead."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key: IssuerKey
    check: SignatureCheck


class KeyRegistry:
    """All issuers and their parsed public keys; reloaded whole after any issuer or key change.

    A key is held as revoked when its issuer is disabled, or when the same key material (whatever its
    PEM, kid or issuer) was revoked anywhere: a revoked key never verifies again under a new kid. A weak
    Ed25519 key (small or mixed order: refused at registration) is not held at all."""

    def __init__(self, store: ReadStore, *, signature_backend: str = "fastest") -> None:
        self._store = store
        self._backend = signature_backend
        self._issuers: frozenset[str] = frozenset()
        self._disabled: frozenset[str] = frozenset()
        self._keys: dict[tuple[str, str], KeyEntry] = {}
        self._generation = 0
        self._loaded_generation = -1
        self._lock = threading.Lock()

    def on_change(self, kind: str, key: str) -> None:
        if kind in (events.KEY, events.ISSUER, events.ALL):
            self._generation += 1

    def _refresh(self) -> None:
        with self._lock:
            generation = self._generation
            if generation == self._loaded_generation:
                return
            listed = self._store.list_issuers()
            issuers = frozenset(i.issuer_id for i in listed)
            disabled = frozenset(i.issuer_id for i in listed if i.disabled_at is not None)
            loaded = []
            for record in self._store.list_keys():
                try:
                    public = load_public_key_pem(record.public_key_pem)
                except KeyFormatError:
                    continue  # refused at registration; a damaged row must not take the service down
                if weak_public_key(public):
                    continue
                loaded.append((record, public, key_material(public)))
            revoked = {material for record, _, material in loaded if record.revoked or record.issuer_id in disabled}
            keys: dict[tuple[str, str], KeyEntry] = {}
            for record, public, material in loaded:
                if material in revoked and not record.revoked:
                    record = replace(record, revoked=True)
                keys[(record.issuer_id, record.kid)] = KeyEntry(record, signature_check(public, backend=self._backend))
            self._issuers, self._disabled, self._keys = issuers, disabled, keys
            self._loaded_generation = generation

    def has_issuer(self, issuer_id: str, *, cached_only: bool = False) -> bool:
        if self._generation != self._loaded_generation:
            if cached_only:
                raise CacheMiss
            self._refresh()
        return issuer_id in self._issuers

    def is_disabled(self, issuer_id: str, *, cached_only: bool = False) -> bool:
        """Whether the operator shut the issuer off (Admin.DisableIssuer)."""
        if self._generation != self._loaded_generation:
            if cached_only:
                raise CacheMiss
            self._refresh()
        return issuer_id in self._disabled

    def get(self, issuer_id: str, kid: str) -> KeyEntry | None:
        if self._generation != self._loaded_generation:
            self._refresh()
        return self._keys.get((issuer_id, kid))


class MerchantDirectory:
    """Every merchant, for the principal check on each merchant call."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store
        self._merchants: dict[str, Merchant] = {}
        self._generation = 0
        self._loaded_generation = -1
        self._lock = threading.Lock()

    def on_change(self, kind: str, key: str) -> None:
        if kind in (events.MERCHANT, events.ALL):
            self._generation += 1

    def get(self, merchant_id: str, *, cached_only: bool = False) -> Merchant | None:
        if self._generation != self._loaded_generation:
            if cached_only:
                raise CacheMiss
            with self._lock:
                generation = self._generation
                if generation != self._loaded_generation:
                    self._merchants = {m.merchant_id: m for m in self._store.list_merchants()}
                    self._loaded_generation = generation
        return self._merchants.get(merchant_id)


@dataclass(frozen=True, slots=True)
class CardSnapshot:
    """What Verify needs of a card, and what a merchant may see of it."""

    ecard_id: str
    card_no: str
    status: int
    channels: frozenset[str]  # bound and not suspended: the channels whose tokens are accepted
    holder_name_masked: str
    region: str
    suspended: frozenset[str] = frozenset()  # bound, suspended by the channel
    replaced_at: int = 0  # tokens issued before are refused (the e-card moved to a replacement card)

    @classmethod
    def of(cls, card: Card) -> CardSnapshot:
        return cls(
            card.ecard_id or "",
            card.card_no,
            card.status,
            frozenset(card.active_channels),
            mask_name(card.holder_name),
            card.region,
            frozenset(card.suspended),
            card.replaced_at or 0,
        )


class CardCache:
    """A bounded LRU of e-card snapshots by ecard_id. Unknown ids are cached too (as None).

    Memory per entry is about 300 bytes: snapshots share their channel sets, regions and masked
    names (a city has a handful of each), and the key is the snapshot's own ecard_id string.
    """

    _SHARED_MAX = 50_000

    def __init__(self, store: ReadStore, capacity: int = 200_000) -> None:
        self._store = store
        self._capacity = max(capacity, 1)
        self._entries: OrderedDict[str, CardSnapshot | None] = OrderedDict()
        self._shared: dict[object, object] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def on_change(self, kind: str, key: str) -> None:
        if kind == events.CARD:
            with self._lock:
                self._generation += 1
                if key == events.ALL:
                    self._entries.clear()
                else:
                    self._entries.pop(key, None)
        elif kind == events.ALL:
            with self._lock:
                self._generation += 1
                self._entries.clear()

    def get(self, ecard_id: str, *, cached_only: bool = False) -> CardSnapshot | None:
        entries = self._entries
        with self._lock:
            if ecard_id in entries:
                entries.move_to_end(ecard_id)
                self.hits += 1
                return entries[ecard_id]
            if cached_only:
                raise CacheMiss  # counted as a miss by the thread that reads it
            generation = self._generation
            self.misses += 1
        card = self._store.get_card(ecard_id=ecard_id)
        snapshot = self._snapshot(card) if card is not None else None
        with self._lock:
            if generation == self._generation:
                entries[snapshot.ecard_id if snapshot is not None else ecard_id] = snapshot
                if len(entries) > self._capacity:
                    entries.popitem(last=False)
        return snapshot

    def _snapshot(self, card: Card) -> CardSnapshot:
        fresh = CardSnapshot.of(card)
        shared = self._shared
        if len(shared) > self._SHARED_MAX:
            shared.clear()
        channels = shared.setdefault(fresh.channels, fresh.channels)
        masked = shared.setdefault(fresh.holder_name_masked, fresh.holder_name_masked)
        region = shared.setdefault(fresh.region, fresh.region)
        suspended = shared.setdefault(fresh.suspended, fresh.suspended)
        return CardSnapshot(fresh.ecard_id, fresh.card_no, fresh.status, channels, masked, region,  # type: ignore[arg-type]
                            suspended, fresh.replaced_at)  # type: ignore[arg-type]


class CertificateDenyList:
    """The operator's deny list of client certificates (SHA-256 fingerprints), held whole in memory.

    A change notice reloads it at once, on the thread that delivers the notice, so that a denied
    certificate is refused on every process within the notice's delay; an mTLS call then costs a set
    lookup (nothing at all while the list is empty). A reload that fails leaves the list stale, and the
    next call reloads it (or raises CacheMiss with `cached_only`)."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store
        self._denied: frozenset[str] = frozenset()
        self._generation = 0
        self._loaded_generation = -1
        self._lock = threading.Lock()

    def on_change(self, kind: str, key: str) -> None:
        if kind in (events.CERTIFICATE, events.ALL):
            self._generation += 1
            with suppress(Exception):  # the store is down: the next call tries again
                self._reload()

    def _reload(self) -> None:
        with self._lock:
            generation = self._generation
            if generation != self._loaded_generation:
                self._denied = frozenset(d.fingerprint for d in self._store.list_denied_certificates())
                self._loaded_generation = generation

    def _fresh(self, cached_only: bool) -> frozenset[str]:
        if self._generation != self._loaded_generation:
            if cached_only:
                raise CacheMiss
            self._reload()
        return self._denied

    def empty(self, *, cached_only: bool = False) -> bool:
        return not self._fresh(cached_only)

    def denied(self, fingerprint: str, *, cached_only: bool = False) -> bool:
        return fingerprint in self._fresh(cached_only)
