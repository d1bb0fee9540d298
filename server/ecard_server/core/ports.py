"""The storage the core needs, as interfaces: the core names these, never a backend.

    ReadStore      what the hot caches load (keys, merchants, a card)
    CardStore      + the e-card lifecycle's writes
    AdminStore     + issuers, keys, merchants, enrollment
    Ledger         money: credits, settlements, refunds, reversals (each in one transaction)
    Statements     reconciliation reads: settlement pages, a day's sums
    ChannelOutbox  the channels' events, written in the transactions of the changes they tell of
    Store          one deployment's whole store: all of the above, its ledger, outbox and audit table

    NonceStore     single use of a token's nonce, deployment-wide
    VerificationRecords   what a Verify answered, by (merchant, request_id)
    ChangeBus      change notices that keep every process's caches fresh (kinds: core.events)

`ecard_server.storage` implements these (SQL, Redis, and in memory for the embedded default); a write
that must decide under a row lock calls back into the core's rules (`rules.settlement.Draft.
shares_under_lock`, `rules.refunds.plan_refund`), so no domain rule is written in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from ecard_server.core.records import (
    AuditEvent,
    AuditQuery,
    Card,
    Catalogue,
    CatalogueItem,
    ChannelEvent,
    CounterBinding,
    DeniedCertificate,
    EnrollRow,
    Issuer,
    IssuerKey,
    LineItem,
    Merchant,
    Reversal,
    SettlementQuery,
    SettlementRecord,
    StoredAuditEvent,
    Totals,
    UsageEntry,
    Visit,
    VisitDraft,
)

if TYPE_CHECKING:
    from ecard_server.core.rules.benefits import AccountState, BenefitPolicy
    from ecard_server.core.rules.settlement import Draft, RefundDraft, ReversalDraft

Listener = Callable[[str, str], None]


class ReadStore(Protocol):
    def list_issuer_ids(self) -> list[str]: ...
    def list_issuers(self) -> list[Issuer]: ...
    def list_denied_certificates(self) -> list[DeniedCertificate]: ...
    def list_keys(self, issuer_id: str | None = None) -> list[IssuerKey]: ...
    def list_merchants(self) -> list[Merchant]: ...
    def get_card(self, *, card_no: str | None = None, ecard_id: str | None = None) -> Card | None: ...


class CardStore(ReadStore, Protocol):
    def bind_ecard(
        self, card_no: str, issuer_id: str, new_ecard_id: str, now: int, statement: bytes = b"", vouched: str = "",
        counter_code: str = "",
    ) -> Card:
        """Gives the card its e-card (once, for life: `new_ecard_id` only if it has none) and binds the
        channel, keeping the signed `statement`, with its audit row (`vouched`: what the statement
        said). With `counter_code`, completes that counter binding in the same transaction, or refuses
        the whole issuance (rules.counter.check_completion). LookupError for an unknown card."""
        ...

    def charge_issue_attempt(self, scopes: Sequence[tuple[str, int]], window_s: int, now: int) -> int:
        """One issuance attempt counted against each (scope, limit) at once, for every process sharing
        the store: 0, or the seconds to wait when a scope is over its limit (then nothing is counted)."""
        ...

    def refund_issue_attempt(self, scopes: Sequence[str]) -> None: ...
    def append_audit(self, events: Sequence[AuditEvent]) -> None: ...

    def set_card_status(self, card_no: str, status: int, actor: str, now: int) -> Card:
        """LookupError for an unknown card."""
        ...

    def change_binding(self, ecard_id: str, issuer_id: str, change: str, event: AuditEvent) -> tuple[Card | None, bool]:
        """Applies SUSPEND, RESUME or UNBIND (model) to one channel's binding, with `event` if it changed
        anything; the card after it (None: no such e-card) and whether it changed."""
        ...


class AdminStore(ReadStore, Protocol):
    def upsert_issuer(self, issuer: Issuer, now: int) -> Issuer: ...
    def import_catalogue(self, items: Sequence[CatalogueItem], now: int) -> str:
        """A whole new catalogue version, with its audit record, in one transaction; returns it."""
        ...
    def current_catalogue(self) -> Catalogue: ...
    def import_policy(self, name: str, body: str, now: int) -> str:
        """A new benefit policy version (its canonical JSON), with its audit record; returns it."""
        ...
    def current_policy(self) -> BenefitPolicy: ...
    def get_issuer(self, issuer_id: str) -> Issuer | None: ...
    def register_key(self, key: IssuerKey, now: int, *events: AuditEvent) -> IssuerKey:
        """Adds a key, or updates the window of the same key; AlreadyExists for another key under its kid.
        `events` (its audit rows) are written in the same transaction."""
        ...

    def revoke_key(self, issuer_id: str, kid: str, *events: AuditEvent) -> IssuerKey | None:
        """None for an unknown key; `events` are written with the revocation."""
        ...

    def get_key(self, issuer_id: str, kid: str) -> IssuerKey | None: ...
    def disable_issuer(self, issuer_id: str, now: int, event: Callable[[int], AuditEvent]) -> Issuer | None:
        """Disables the issuer and revokes all its keys at once, with `event(number of keys revoked)`;
        None for an unknown issuer."""
        ...

    def deny_certificate(self, denied: DeniedCertificate, event: AuditEvent) -> DeniedCertificate: ...
    def allow_certificate(self, fingerprint: str, event: AuditEvent) -> DeniedCertificate | None: ...
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

    def account_state(self, ecard_id: str, nonce: bytes, now: int) -> AccountState:
        """What a Quote prices with (rules.benefits.AccountState), without locking the card."""
        ...
    def settle(self, draft: Draft, now: int) -> SettlementRecord: ...
    def refund(self, draft: RefundDraft, now: int) -> SettlementRecord: ...
    def replace_card(self, old_card_no: str, new_card_no: str, idempotency_key: str, request_hash: bytes,
                     now: int, check: Callable[[Card | None, Card | None], None]) -> Card:
        """Moves the e-card, its bindings, the balance and the benefit accumulators to the new card and
        cancels the old one, in one transaction, once per idempotency key; `check(old, new)` (the core's
        rule) runs under the lock."""
        ...
    def get_settlement(self, settlement_id: str) -> SettlementRecord | None: ...
    def settle_key(self, merchant_id: str, idempotency_key: str) -> tuple[tuple[SettlementRecord, bytes] | None, bool]:
        """The settlement a merchant made under a Settle key, with its request hash (None: none), and
        whether the key was reversed (a later Settle under it: REVERSED)."""
        ...

    def reverse(self, draft: ReversalDraft, now: int) -> Reversal:
        """In one transaction, serialised with any Settle under the same key: the settlement under the
        key refunded in full, or the key marked reversed (a later Settle under it: REVERSED)."""
        ...


class Statements(Protocol):
    """What reconciliation reads of the store."""

    def settlement_page(self, query: SettlementQuery, limit: int) -> list[SettlementRecord]:
        """Up to `limit` settlements of the query, after its `after`, by (settled_at, settlement_id)."""
        ...

    def settlement_totals(self, since: int, until: int, merchant_id: str | None) -> list[tuple[str, str, Totals]]:
        """Settlements settled in [since, until) grouped by (merchant_id, terminal_id): of one merchant, or
        (None) of all; ordered by both."""
        ...


class ChannelOutbox(Protocol):
    """The channels' events, written by the store's writes in their own transactions."""

    on_committed: Callable[[Iterable[str]], None] | None
    """Called with the channels told, after each transaction that told any commits."""

    def page(self, issuer_id: str, after: int, limit: int, kinds: Sequence[str] = (), *,
             number: bool = True) -> list[ChannelEvent]:
        """A channel's events numbered above `after`, in order, at most `limit` (of `kinds` only, if any).
        `number`: where events are numbered after their commit, number the channel's committed ones
        first when one waits (else read past it: a notice said its numbering is under way)."""
        ...

    def bounds(self, issuer_id: str) -> tuple[int, int]:
        """(the first number still kept, the last number given); (0, 0) for a channel never told."""
        ...

    def warn_expiring_keys(self, now: int, horizon_s: int) -> int: ...
    def prune(self, before: int) -> None: ...


class UsagePages(Protocol):
    """An e-card's uses (verifications, settlements, refunds), newest first."""

    def page(self, ecard_id: str, before: tuple[int, str, str] | None, limit: int) -> list[UsageEntry]:
        """At most `limit` uses older than `before` (at, kind, ref); from the newest without it."""
        ...


class CounterBindingStore(Protocol):
    def start_counter_binding(self, binding: CounterBinding, event: AuditEvent) -> None:
        """Stores a fresh binding with its audit row."""
        ...

    def get_counter_binding(self, code: str) -> CounterBinding | None: ...
    def prune_counter_bindings(self, expired_before: int) -> None:
        """Drops the bindings that expired before then (their completions stay in the audit trail)."""
        ...


class Visits(Protocol):
    """Hospital visits. Each write decides under the visit's row lock with the core's rules (`check`)."""

    def get_visit(self, merchant_id: str, visit_id: str) -> Visit | None: ...
    def open_visit(self, draft: VisitDraft, now: int) -> Visit:
        """Opens once per (merchant, key) and once per verification (VERIFICATION_USED)."""
        ...

    def add_visit_items(self, merchant_id: str, visit_id: str, idempotency_key: str, request_hash: bytes,
                        items: Sequence[LineItem], now: int, check: Callable[[Visit], None]) -> Visit | None: ...
    def cancel_visit(self, merchant_id: str, visit_id: str, now: int,
                     check: Callable[[Visit], None]) -> Visit | None: ...


class Store(CardStore, AdminStore, CounterBindingStore, Protocol):
    """One deployment's store. `local`: every read is a local one (no network round trip), so a cache
    miss may be read on the event loop."""

    @property
    def ledger(self) -> Ledger: ...
    @property
    def outbox(self) -> ChannelOutbox: ...
    @property
    def usage(self) -> UsagePages: ...
    @property
    def statements(self) -> Statements: ...
    @property
    def visits(self) -> Visits: ...
    @property
    def local(self) -> bool: ...

    def meta_value(self, name: str) -> bytes | None:
        """A small named value of the deployment (never a secret: those live outside the store)."""
        ...

    def set_meta_value(self, name: str, value: bytes) -> None: ...
    def claim_meta_value(self, name: str, value: bytes, first: Callable[[], None]) -> bool:
        """Writes `value` unless `name` has one; when this call writes it, `first()` runs before the
        commit (an error in it writes nothing). True if this call wrote it."""
        ...

    def scrub_meta_value(self, name: str) -> None:
        """Deletes the value, its bytes not left behind in the store's files."""
        ...

    def seal_holders(self, seal: Callable[[str, bytes], tuple[str, bytes]]) -> int:
        """Rows kept with a full name from before holders were sealed get `seal(name, id_hash)`'s masked
        name and sealed hash instead; returns how many."""
        ...

    def close(self) -> None: ...


class NonceStore(Protocol):
    @property
    def local(self) -> bool:
        """Consumption never leaves this process (nothing to await): Verify may run whole on the loop."""
        ...

    def consume(self, key: bytes, expires_at: float, keep: KeptAnswer | None = None) -> bool:
        """Marks `key` used until `expires_at` (unix seconds). True if it was not used before. `keep`: a
        Verify's accepted answer, kept in the deployment's VerificationRecords only if the nonce is
        fresh (a store that keeps the records beside the nonces writes both at once).

        Raises ecard.errors.Unavailable when the store cannot answer: the caller must fail closed.
        """

    def consume_as(self, key: bytes, expires_at: float, spender: bytes) -> bool:
        """`consume` that remembers who spent the nonce (core.nonces.spender: a Settle's merchant and
        idempotency key): True also when `spender` itself consumed it before, so the same Settle
        retried after a crash (on any process) settles instead of finding its own consumption."""

    def release(self, key: bytes) -> bool:
        """Forgets a consumption whose purpose failed for want of a store (a Settle whose transaction
        could not run), so the holder's code works again. True if it was forgotten; never raises."""


KeptAnswer = tuple[str, str, bytes]
"""What VerificationRecords.record keeps: merchant_id, request_id, the answer's bytes."""


class VerificationRecords(Protocol):
    """What a Verify answered, by (merchant, request_id): a POS whose Verify timed out asks it back.

    Only calls that carry a request_id are recorded (the SDK gives every Verify one). Records live
    about the verification window: past it an accepted answer could not be settled anyway. A merchant
    finds only its own records: the key holds the merchant id, so another merchant's request_id is
    simply not there. The answer is kept as the bytes of the response message, never read here.
    """

    def record(self, merchant_id: str, request_id: str, answer: bytes) -> None:
        """Keeps `answer` for (merchant_id, request_id), replacing an earlier one. Raises
        ecard.errors.Unavailable when the store cannot be written."""

    def find(self, merchant_id: str, request_id: str) -> bytes | None:
        """The answer kept for (merchant_id, request_id), or None. Raises ecard.errors.Unavailable."""


class ChangeBus(Protocol):
    def subscribe(self, listener: Listener) -> None: ...

    def publish(self, kind: str, key: str) -> None: ...

    def close(self) -> None: ...
