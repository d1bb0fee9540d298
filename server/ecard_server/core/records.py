"""Domain records: plain data, no rules and no I/O. The storage backends build them, the services read them.

    cards and parties    Issuer, IssuerKey, Merchant, EnrollRow, Card (and the card statuses)
    catalogue            CatalogueItem, Catalogue (NO_CATALOGUE: none imported)
    settlement           LineItem, LinePricing, Split, Shares, SettleInput, SettlementRecord (and its statuses)
    refunds              RefundAsk, Refunded, RefundPlan, RefundRecord
    audit                AuditEvent, AuditQuery, StoredAuditEvent

This module imports nothing of the core: every other module of it may import this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, NamedTuple, TypeVar

from ecard.v1 import settlement_pb2, types_pb2

ACTIVE = types_pb2.CARD_STATUS_ACTIVE
LOST = types_pb2.CARD_STATUS_LOST
CANCELLED = types_pb2.CARD_STATUS_CANCELLED
# The ErrorInfo reason for a card that is not active, by its status.
NOT_ACTIVE_REASON: dict[int, str] = {LOST: "CARD_LOST", CANCELLED: "CARD_CANCELLED"}
# What a channel (or the operator) does to one binding of an e-card.
SUSPEND, RESUME, UNBIND = "SUSPEND", "RESUME", "UNBIND"
SETTLED = types_pb2.SETTLEMENT_STATUS_SETTLED
REFUNDED = types_pb2.SETTLEMENT_STATUS_REFUNDED
PARTIALLY_REFUNDED = types_pb2.SETTLEMENT_STATUS_PARTIALLY_REFUNDED

_Record = TypeVar("_Record")


def quick_init(cls: type[_Record]) -> type[_Record]:
    """A frozen, slotted dataclass given an __init__ that fills its slots through their descriptors: the
    frozen dataclass's own calls object.__setattr__ per field, about ten times the cost, which the
    records made per basket line pay 60 times a Quote or Settle (and a Draft or a record 19 to 25 times
    each). Same signature and defaults, still frozen (assignment raises FrozenInstanceError), equal and
    hashed by value; dataclasses.replace goes through it too. Fields with a default factory, keyword-only
    or init=False fields and a __post_init__ are refused (TypeError): nothing here needs them."""
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: quick_init takes no __post_init__")
    space: dict[str, Any] = {}
    params, body = [], []
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not MISSING or not f.init or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: quick_init takes plain positional fields only")
        space[f"_set_{f.name}"] = vars(cls)[f.name].__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            space[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})\n")
    exec(f"def __init__(self, {', '.join(params)}):\n{''.join(body)}", space)  # as dataclasses makes its own
    init = space["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@dataclass(frozen=True, slots=True)
class Issuer:
    issuer_id: str
    display_name: str
    disabled_at: int | None = None  # unix seconds of DisableIssuer; None: active


@dataclass(frozen=True, slots=True)
class DeniedCertificate:
    """A client certificate on the deny list: SHA-256 of its DER (64 lower-case hex digits)."""

    fingerprint: str
    reason: str
    denied_by: str
    denied_at: int


@dataclass(frozen=True, slots=True)
class IssuerKey:
    issuer_id: str
    kid: str
    algorithm: int
    public_key_pem: str
    not_before: int | None  # unix seconds; None is open
    not_after: int | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: str
    display_name: str
    kind: int
    region: str
    designated: bool


@dataclass(frozen=True, slots=True)
class EnrollRow:
    card_no: str
    holder_name: str
    id_hash: bytes
    region: str
    opening_balance_fen: int
    person_category: str = ""  # "" keeps a known card's category (a new card: employee)


@dataclass(frozen=True, slots=True)
class Card:
    """A physical card with its e-card (if issued), channel bindings and account balance."""

    card_no: str
    holder_name: str
    id_hash: bytes
    region: str
    status: int
    balance_fen: int
    ecard_id: str | None
    issued_at: int | None
    channels: tuple[str, ...]  # every channel bound, suspended or not
    suspended: tuple[str, ...] = ()  # those of `channels` whose binding is suspended
    replaced_at: int | None = None  # the e-card moved to this card then: older tokens are refused

    @property
    def active_channels(self) -> tuple[str, ...]:
        return tuple(c for c in self.channels if c not in self.suspended)


# -- settlement --------------------------------------------------------------------------------------
@quick_init
@dataclass(frozen=True, slots=True)
class LineItem:
    code: str
    name: str
    drug_class: int
    unit_price_fen: int
    quantity: int

    @property
    def amount_fen(self) -> int:
        return self.unit_price_fen * self.quantity


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """An item of the drug catalogue: what the fund covers of a line that names its code."""

    code: str
    name: str
    drug_class: int
    price_limit_fen: int  # 限价 per unit: the part of a unit price above it is self-pay
    valid_from: str = ""  # YYYY-MM-DD (Asia/Shanghai), inclusive; "" always
    valid_to: str = ""  # YYYY-MM-DD, inclusive; "" open

    def valid_on(self, day: str) -> bool:
        return (not self.valid_from or self.valid_from <= day) and (not self.valid_to or day <= self.valid_to)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """One version of the catalogue, whole. Version "" is no catalogue: the POS's classes count."""

    version: str
    items: Mapping[str, CatalogueItem]


NO_CATALOGUE = Catalogue("", {})


@quick_init
@dataclass(frozen=True, slots=True)
class LinePricing:
    """How one line was priced: covered + self_pay_first + over_limit + not_covered == its amount."""

    drug_class: int
    covered_fen: int
    self_pay_first_fen: int  # class B's self-pay-first share (先自付)
    over_limit_fen: int  # above the catalogue's price limit
    not_covered_fen: int  # class C


@quick_init
@dataclass(frozen=True, slots=True)
class Split:
    """What the policy makes of a basket before the account is looked at."""

    total_fen: int
    covered_fen: int
    fund_fen: int
    line_covered_fen: tuple[int, ...] = ()  # covered per basket line, adding up to covered_fen
    lines: tuple[LinePricing, ...] = ()  # per basket line
    catalogue_version: str = ""
    policy_version: str = ""


@quick_init
@dataclass(frozen=True, slots=True)
class Shares:
    fund_fen: int
    account_fen: int
    self_pay_fen: int

    @property
    def total_fen(self) -> int:
        return self.fund_fen + self.account_fen + self.self_pay_fen


@quick_init
@dataclass(frozen=True, slots=True)
class SettleInput:
    """A Settle (or a Quote: no idempotency_key, no quote_id) request in domain terms: exactly one of
    verification_id, token and quote_id is set."""

    idempotency_key: str
    items: tuple[LineItem, ...]
    verification_id: str = ""
    token: str = ""
    skip_personal_account: bool = False
    quote_id: str = ""
    terminal_id: str = ""
    operator_id: str = ""


@quick_init
@dataclass(frozen=True, slots=True)
class SettlementRecord:
    settlement_id: str
    ecard_id: str
    merchant_id: str
    status: int
    total_fen: int
    fund_fen: int
    account_fen: int
    self_pay_fen: int
    balance_after_fen: int  # after the settlement, or after its latest refund
    items: tuple[LineItem, ...]
    settled_at: int
    refunded_at: int | None  # the latest refund
    refunded: Shares = Shares(0, 0, 0)  # what its refunds gave back so far, per share
    refunds: tuple[RefundRecord, ...] = ()  # oldest first
    # Which share paid which line, and what refunds gave back of each line (by basket index). Empty
    # for a settlement made before lines kept their shares: its refunds are proportional.
    line_shares: tuple[Shares, ...] = ()
    line_refunded: tuple[Shares, ...] = ()
    line_refunded_quantities: tuple[int, ...] = ()
    line_pricing: tuple[LinePricing, ...] = ()  # empty for a settlement priced before lines kept it
    catalogue_version: str = ""
    policy_version: str = ""
    terminal_id: str = ""
    operator_id: str = ""
    idempotency_key: str = ""  # the Settle's
    reversed_at: int | None = None  # when ReverseSettlement gave it back


@dataclass(frozen=True, slots=True)
class Reversal:
    """What a ReverseSettlement did: the settlement under the key (now refunded) or None, and when the
    key was first reversed."""

    settlement: SettlementRecord | None
    reversed_at: int


# -- refunds -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RefundAsk:
    """What a Refund request asks for: exactly one of `full`, `lines` ((code, quantity)) and
    `amount_fen` (> 0). Its own rules are checked by core.rules.validation.refund_ask."""

    lines: tuple[tuple[str, int], ...] = ()
    amount_fen: int = 0
    full: bool = False

    @property
    def whole(self) -> bool:
        return self.full


@dataclass(frozen=True, slots=True)
class Refunded:
    """What the earlier refunds of a settlement gave back: per share, per basket line (by index) the
    quantity, and per line each share (empty for a settlement whose lines keep no shares)."""

    shares: Shares
    line_quantities: tuple[int, ...]
    line_shares: tuple[Shares, ...] = ()

    @classmethod
    def nothing(cls, lines: int) -> Refunded:
        return cls(Shares(0, 0, 0), (0,) * lines, (Shares(0, 0, 0),) * lines)


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """One refund as made: its part of each share, the account after it, the lines it gave back."""

    idempotency_key: str
    reason: str
    shares: Shares
    balance_after_fen: int
    lines: tuple[tuple[str, int], ...]  # (code, quantity), in basket order
    refunded_at: int
    terminal_id: str = ""
    operator_id: str = ""
    reversal: bool = False  # made by a ReverseSettlement

    @property
    def amount_fen(self) -> int:
        return self.shares.total_fen


@dataclass(frozen=True, slots=True)
class RefundPlan:
    """One refund: its part of each share, the quantity it gives back of each basket line, and whether
    it gives back all that was left (the settlement is then REFUNDED, else PARTIALLY_REFUNDED)."""

    shares: Shares
    line_quantities: tuple[int, ...]
    completes: bool
    line_shares: tuple[Shares, ...] = ()  # per basket line, its part of each share (empty: old settlement)

    @property
    def amount_fen(self) -> int:
        return self.shares.total_fen


# -- audit -------------------------------------------------------------------------------------------
class AuditEvent(NamedTuple):
    """One row of the insert-only audit table."""

    at: int
    kind: str
    actor: str
    subject: str  # an e-card id (never a card number, name or identity number)
    detail: str


class AuditQuery(NamedTuple):
    """Filters of a read of the audit trail (empty or None: any), and where a page starts."""

    kind: str = ""
    actor: str = ""
    subject: str = ""
    since: int | None = None  # at >= since
    until: int | None = None  # at < until
    after_id: int = 0  # events with a larger event_id
    limit: int = 100


class StoredAuditEvent(NamedTuple):
    event_id: int
    at: int
    kind: str
    actor: str
    subject: str
    detail: str


# -- channel events (the outbox) ---------------------------------------------------------------------
# Kinds of event a channel is told of (ChannelEventKind by its short name).
CARD_STATUS, BINDING, SETTLED_EVENT, REFUNDED_EVENT, CARD_REPLACED, KEY_EXPIRING = (
    "CARD_STATUS", "BINDING", "SETTLED", "REFUNDED", "CARD_REPLACED", "KEY_EXPIRING",
)


class ChannelEvent(NamedTuple):
    """One event of a channel's outbox. `detail` holds the kind's fields (amounts, merchant, status,
    binding, key): never an identity number, a full name or a card number in clear."""

    issuer_id: str
    seq: int  # the cursor: increasing per channel, without gaps
    kind: str
    ecard_id: str
    at: int
    detail: dict[str, Any]


# -- usage history (用卡记录) --------------------------------------------------------------------------
VERIFICATION_USE, SETTLEMENT_USE, REFUND_USE = "1", "2", "3"  # kinds of use; in one second, later kinds first


class UsageEntry(NamedTuple):
    """One use of an e-card as its holder sees it in the channel's app: a verification (with its
    reason), a settlement or a refund (amounts), at a merchant, at a time."""

    kind: str  # VERIFICATION_USE, SETTLEMENT_USE or REFUND_USE
    at: int
    ref: str  # what orders ties within a second (an audit row, a settlement id, a refund number)
    merchant_id: str
    merchant_name: str
    terminal_id: str = ""
    reason: int = 0  # a verification's Reason
    settlement_id: str = ""
    total_fen: int = 0
    fund_fen: int = 0
    account_fen: int = 0
    self_pay_fen: int = 0


# -- binding at the counter --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CounterBinding:
    """A binding a merchant started at its counter; completed by the issuance that named its code."""

    code: str
    merchant_id: str
    terminal_id: str
    created_at: int
    expires_at: int
    ecard_id: str | None = None
    issuer_id: str | None = None
    completed_at: int | None = None


# -- statements ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over settlements, each with its refunds as they stand (see SettlementTotals in the proto)."""

    settlements: int = 0
    total_fen: int = 0
    fund_fen: int = 0
    account_fen: int = 0
    self_pay_fen: int = 0
    refunds: int = 0  # refunds that are not reversals
    fund_refunded_fen: int = 0  # by refunds and reversals
    account_refunded_fen: int = 0
    self_pay_refunded_fen: int = 0
    reversals: int = 0  # settlements reversed
    reversed_fen: int = 0  # what the reversals gave back (part of the refunded sums)

    @property
    def refunded_fen(self) -> int:
        return self.fund_refunded_fen + self.account_refunded_fen + self.self_pay_refunded_fen

    @property
    def net_fen(self) -> int:
        return self.total_fen - self.refunded_fen

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Totals)))


@dataclass(frozen=True, slots=True)
class GroupTotals:
    """Totals of one group: a terminal (of one merchant's day), or a merchant, or a fund."""

    key: str
    totals: Totals
    region: str = ""  # a merchant's pooling region (the operator's statement)


@dataclass(frozen=True, slots=True)
class DayTotals:
    merchant_id: str
    day: str
    since: int
    until: int
    terminals: tuple[GroupTotals, ...]  # by terminal_id

    @property
    def total(self) -> Totals:
        return sum((g.totals for g in self.terminals), Totals())


@dataclass(frozen=True, slots=True)
class OperatorDayTotals:
    day: str
    since: int
    until: int
    merchants: tuple[GroupTotals, ...]  # by merchant_id
    funds: tuple[GroupTotals, ...]  # by pooling region

    @property
    def total(self) -> Totals:
        return sum((g.totals for g in self.merchants), Totals())


@dataclass(frozen=True, slots=True)
class SettlementQuery:
    """One page of a merchant's listing. `after` is the last (settled_at, settlement_id) already read."""

    merchant_id: str
    since: int | None = None
    until: int | None = None
    terminal_id: str = ""
    page_size: int = 100
    after: tuple[int, str] | None = field(default=None)


@dataclass(frozen=True, slots=True)
class SettlementPage:
    settlements: tuple[SettlementRecord, ...]
    next_page_token: str  # empty on the last page


# -- hospital visits ---------------------------------------------------------------------------------
VISIT_OPEN, VISIT_SETTLED, VISIT_CANCELLED, VISIT_EXPIRED = (
    settlement_pb2.VISIT_STATUS_OPEN, settlement_pb2.VISIT_STATUS_SETTLED, settlement_pb2.VISIT_STATUS_CANCELLED,
    settlement_pb2.VISIT_STATUS_EXPIRED,
)


@dataclass(frozen=True, slots=True)
class Visit:
    """A hospital visit as stored: `status` is OPEN, SETTLED or CANCELLED (an OPEN visit past
    `expires_at` is EXPIRED: rules.visits.status_at). `revision` counts the additions of items."""

    visit_id: str
    merchant_id: str
    ecard_id: str
    status: int
    items: tuple[LineItem, ...]
    opened_at: int
    expires_at: int
    closed_at: int | None
    settlement_id: str
    terminal_id: str
    department: str
    idempotency_key: str
    revision: int

    @property
    def total_fen(self) -> int:
        return sum(item.amount_fen for item in self.items)


@dataclass(frozen=True, slots=True)
class VisitDraft:
    """A visit to open: checked, its credential verified."""

    visit_id: str
    merchant_id: str
    idempotency_key: str
    request_hash: bytes
    ecard_id: str
    verification_nonce: bytes
    expires_at: int
    terminal_id: str
    operator_id: str
    department: str
