"""The storage the core needs, as interfaces: the core names these, never a backend.

    ReadStore      what the hot caches load (keys, merchants, a card)
    CardStore      + the e-card lifecycle's writes
    AdminStore     + issuers, keys, merchants, enrollment
    Ledger         money: credits, settlements, refunds (each in one transaction)
    Store          one deployment's whole store: all of the above, its ledger, the audit table

Beside them: `nonces.NonceStore` (single use) and `events.ChangeBus` (change notices). The SQL
backends (`ecard_server.storage`) implement these; a write that must decide under a row lock calls
back into the core's rules (`settlement.Draft.shares_under_lock`, `refunds.plan_refund`),
so no domain rule is written in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ecard_server.core.model import Card, EnrollRow, Issuer, IssuerKey, Merchant

if TYPE_CHECKING:
    from ecard_server.core.audit import AuditEvent, AuditQuery, StoredAuditEvent
    from ecard_server.core.settlement import Draft, RefundDraft, SettlementRecord


class ReadStore(Protocol):
    def list_issuer_ids(self) -> list[str]: ...
    def list_keys(self, issuer_id: str | None = None) -> list[IssuerKey]: ...
    def list_merchants(self) -> list[Merchant]: ...
    def get_card(self, *, card_no: str | None = None, ecard_id: str | None = None) -> Card | None: ...


class CardStore(ReadStore, Protocol):
    def bind_ecard(self, card_no: str, issuer_id: str, new_ecard_id: str, now: int) -> Card:
        """Gives the card its e-card (once, for life: `new_ecard_id` only if it has none) and binds the
        channel, with its audit row. LookupError for an unknown card."""
        ...

    def set_card_status(self, card_no: str, status: int, actor: str, now: int) -> Card:
        """LookupError for an unknown card."""
        ...


class AdminStore(ReadStore, Protocol):
    def upsert_issuer(self, issuer: Issuer, now: int) -> Issuer: ...
    def get_issuer(self, issuer_id: str) -> Issuer | None: ...
    def register_key(self, key: IssuerKey, now: int, *events: AuditEvent) -> IssuerKey:
        """Adds a key, or updates the window of the same key; AlreadyExists for another key under its kid.
        `events` (its audit rows) are written in the same transaction."""
        ...

    def revoke_key(self, issuer_id: str, kid: str, *events: AuditEvent) -> IssuerKey | None:
        """None for an unknown key; `events` are written with the revocation."""
        ...

    def get_key(self, issuer_id: str, kid: str) -> IssuerKey | None: ...
    def upsert_merchant(self, m: Merchant, now: int) -> Merchant: ...
    def audit_page(self, query: AuditQuery) -> list[StoredAuditEvent]:
        """The audit events `query` selects, oldest first (after `query.after_id`, at most `query.limit`)."""
        ...

    def enroll(self, rows: Sequence[EnrollRow], now: int) -> tuple[int, int]:
        """Enrolls new cards, updates known ones (never a balance); returns (enrolled, updated)."""
        ...


class Ledger(Protocol):
    """Money movement. Every change of a balance writes its ledger row in the same transaction."""

    def credit(self, card_no: str, amount_fen: int, idempotency_key: str, request_hash: bytes, now: int) -> Card:
        """Adds money once per idempotency key. LookupError for an unknown card."""
        ...

    def settle(self, draft: Draft, now: int) -> SettlementRecord: ...
    def refund(self, draft: RefundDraft, now: int) -> SettlementRecord: ...
    def get_settlement(self, settlement_id: str) -> SettlementRecord | None: ...
    def find_settlement(self, merchant_id: str, idempotency_key: str) -> tuple[SettlementRecord, bytes] | None:
        """The settlement a merchant made under an idempotency key, with its request hash."""
        ...


class Store(CardStore, AdminStore, Protocol):
    """One deployment's store. `local`: every read is a local one (no network round trip), so a cache
    miss may be read on the event loop."""

    @property
    def ledger(self) -> Ledger: ...
    @property
    def local(self) -> bool: ...

    def secret(self) -> bytes: ...
    def seal_holders(self, seal: Callable[[str, bytes], tuple[str, bytes]]) -> int:
        """Rows kept with a full name from before holders were sealed get `seal(name, id_hash)`'s masked
        name and sealed hash instead; returns how many."""
        ...

    def append_audit(self, events: Sequence[AuditEvent]) -> None: ...
    def close(self) -> None: ...
