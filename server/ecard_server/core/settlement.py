"""Settlement: split a basket into fund, personal-account and self-pay shares, and move the money once.

    SettlementPolicy.split(items, merchant_kind)   per line, rounded half up to whole fen:
        amount  = unit_price_fen * quantity
        covered = amount (class A) | amount * (1 - class_b_self_pay_ratio) (class B) | 0 (class C)
        fund    = covered * fund_ratio[merchant kind]
    Draft.shares(balance)                           from the balance locked inside the transaction:
        account  = min(balance, covered - fund)    (0 with skip_personal_account)
        self_pay = total - fund - account           so fund + account + self_pay == total, always

SettlementService checks every input (core.validation) before anything is consumed or written,
answers a repeated (merchant, idempotency_key) from the first record, verifies the credential, then
hands one Draft to the ledger (core.stores.Ledger), which settles it in one transaction, calling
`Draft.shares_under_lock` with what it read under the card's row lock. No gRPC here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from ecard.errors import FailedPrecondition, NotFound, PermissionDenied, Unavailable
from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings
from ecard_server.core import validation
from ecard_server.core.idempotency import same_request
from ecard_server.core.model import ACTIVE, NOT_ACTIVE_REASON

if TYPE_CHECKING:
    from ecard_server.core.caches import MerchantDirectory
    from ecard_server.core.handles import VerificationHandles
    from ecard_server.core.refunds import RefundAsk, RefundRecord
    from ecard_server.core.stores import Ledger
    from ecard_server.core.verification import TokenVerifier

SETTLED = t.SETTLEMENT_STATUS_SETTLED
REFUNDED = t.SETTLEMENT_STATUS_REFUNDED
PARTIALLY_REFUNDED = t.SETTLEMENT_STATUS_PARTIALLY_REFUNDED
_HALF = Fraction(1, 2)


# -- domain records ---------------------------------------------------------------------------------
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
class Split:
    """What the policy makes of a basket before the account is looked at."""

    total_fen: int
    covered_fen: int
    fund_fen: int


@dataclass(frozen=True, slots=True)
class Shares:
    fund_fen: int
    account_fen: int
    self_pay_fen: int

    @property
    def total_fen(self) -> int:
        return self.fund_fen + self.account_fen + self.self_pay_fen


@dataclass(frozen=True, slots=True)
class SettleInput:
    """A Settle request in domain terms: exactly one of verification_id and token is set."""

    idempotency_key: str
    items: tuple[LineItem, ...]
    verification_id: str = ""
    token: str = ""
    skip_personal_account: bool = False


@dataclass(frozen=True, slots=True)
class Draft:
    """A checked, priced settlement, ready for the store's one transaction."""

    settlement_id: str
    merchant_id: str
    idempotency_key: str
    request_hash: bytes
    ecard_id: str
    verification_nonce: bytes
    items: tuple[LineItem, ...]
    split: Split
    skip_personal_account: bool
    used_reason: str  # the ErrorInfo word when this credential already settled: VERIFICATION_USED or REPLAYED

    def shares_under_lock(self, card_status: int | None, settled_before: bool, balance_fen: int) -> Shares:
        """The rules of a settlement, given what the ledger read under the card's row lock: the card's
        status (None: no such e-card), whether this credential already settled, and the balance.
        Returns the three shares, or raises FailedPrecondition."""
        if card_status is None:
            raise FailedPrecondition("no such e-card", "CARD_UNKNOWN")
        if settled_before:
            raise FailedPrecondition("this verification has already been used to settle", self.used_reason)
        if card_status != ACTIVE:
            raise FailedPrecondition("the card is not active", NOT_ACTIVE_REASON.get(card_status, "CARD_CANCELLED"))
        return shares(self.split, balance_fen, skip_personal_account=self.skip_personal_account)


@dataclass(frozen=True, slots=True)
class RefundDraft:
    settlement_id: str
    merchant_id: str
    idempotency_key: str
    request_hash: bytes
    reason: str
    ask: RefundAsk  # what to give back: core.refunds.plan_refund, with what the ledger read under the row lock

    def check_owner(self, owner: str | None) -> None:
        """The settlement exists (`owner` is its merchant) and belongs to the refunding merchant."""
        if owner is None:
            raise NotFound("no such settlement", "SETTLEMENT_UNKNOWN")
        if owner != self.merchant_id:
            raise PermissionDenied("only the settling merchant may refund", "SETTLEMENT_NOT_YOURS")



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


# -- policy -----------------------------------------------------------------------------------------
def round_half_up(value: Fraction) -> int:
    """Whole fen, halves up (value is never negative here)."""
    return math.floor(value + _HALF)


def shares(split: Split, balance_fen: int, *, skip_personal_account: bool) -> Shares:
    due = 0 if skip_personal_account else split.covered_fen - split.fund_fen
    account = max(0, min(balance_fen, due))
    return Shares(split.fund_fen, account, split.total_fen - split.fund_fen - account)


@dataclass(frozen=True)
class SettlementPolicy:
    """The coverage rules of the contract, with exact ratios from the server's settings."""

    class_b_self_pay_ratio: Fraction
    fund_ratio: Mapping[int, Fraction]

    @classmethod
    def from_settings(cls, settings: Settings) -> SettlementPolicy:
        return cls(settings.class_b_self_pay_ratio, dict(settings.fund_ratio))

    def covered_fen(self, item: LineItem) -> int:
        if item.drug_class == t.DRUG_CLASS_A:
            return item.amount_fen
        if item.drug_class == t.DRUG_CLASS_B:
            return round_half_up(item.amount_fen * (1 - self.class_b_self_pay_ratio))
        return 0

    def split(self, items: Sequence[LineItem], merchant_kind: int) -> Split:
        """Totals of a checked basket; rounding is per line, so a receipt's lines add up to its totals."""
        ratio = self.fund_ratio.get(merchant_kind)
        if ratio is None:
            raise FailedPrecondition("the merchant's kind has no fund ratio", "MERCHANT_KIND_UNKNOWN")
        total = covered = fund = 0
        for item in items:
            line_covered = self.covered_fen(item)
            total += item.amount_fen
            covered += line_covered
            fund += round_half_up(line_covered * ratio)
        return Split(total, covered, fund)


def _digest(form: object) -> bytes:
    return hashlib.sha256(json.dumps(form, ensure_ascii=False, separators=(",", ":")).encode()).digest()


def settle_hash(request: SettleInput) -> bytes:
    """The request's identity for idempotency: same key and same hash is the same Settle."""
    return _digest([
        "settle",
        "verification_id" if request.verification_id else "token",
        request.verification_id or request.token,
        [[i.code, i.name, i.drug_class, i.unit_price_fen, i.quantity] for i in request.items],
        request.skip_personal_account,
    ])


def refund_hash(settlement_id: str, reason: str, ask: RefundAsk) -> bytes:
    if ask.whole:  # the form of a whole refund before partial ones: its keys stay the same request
        return _digest(["refund", settlement_id, reason])
    return _digest(["refund", settlement_id, reason, [list(line) for line in ask.lines], ask.amount_fen])


def new_settlement_id() -> str:
    """'S' and 16 base32 characters (80 random bits)."""
    return "S" + base64.b32encode(os.urandom(10)).decode("ascii")


def _reason_word(reason: int) -> str:
    return t.Reason.Name(reason).removeprefix("REASON_")


# -- service ----------------------------------------------------------------------------------------
class SettlementService:
    def __init__(
        self,
        *,
        ledger: Ledger,
        policy: SettlementPolicy,
        verifier: TokenVerifier,
        handles: VerificationHandles,
        merchants: MerchantDirectory,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        replay_wait_s: float = 2.0,
    ) -> None:
        self._ledger = ledger
        self._policy = policy
        self._verifier = verifier
        self._handles = handles
        self._merchants = merchants
        self._max_items = settings.max_basket_items
        self._clock = clock
        self._replay_wait_s = replay_wait_s

    def _replay(self, merchant_id: str, key: str, request_hash: bytes) -> SettlementRecord | None:
        """The first record of an earlier Settle with this key; AlreadyExists if that was another request."""
        found = self._ledger.find_settlement(merchant_id, key)
        if found is None:
            return None
        record, first_hash = found
        same_request(first_hash, request_hash, "settlement")
        return record

    def settle(self, merchant_id: str, request: SettleInput) -> SettlementRecord:
        validation.settle_request(request, self._max_items)
        merchant = self._merchants.get(merchant_id)
        if merchant is None:
            raise PermissionDenied("merchant is unknown", "MERCHANT_NOT_DESIGNATED")
        split = self._policy.split(request.items, merchant.kind)
        request_hash = settle_hash(request)
        key = request.idempotency_key
        # A retry is answered before its credential is looked at: the token is spent by then.
        earlier = self._replay(merchant_id, key, request_hash)
        if earlier is not None:
            return earlier
        if request.verification_id:
            ecard_id, nonce = self._open_verification(merchant_id, request.verification_id)
            used_reason = "VERIFICATION_USED"
        else:
            outcome = self._verifier.verify_token(
                request.token, merchant_id=merchant_id, purpose=t.PURPOSE_MEDICAL_SETTLEMENT,
                min_assurance=t.ASSURANCE_PIN,
            )
            if not outcome.accepted:
                if outcome.reason == t.REASON_REPLAYED:
                    # The same Settle may be in flight on another thread or replica: wait for its record.
                    winner = self._await_record(merchant_id, key, request_hash)
                    if winner is not None:
                        return winner
                word = _reason_word(outcome.reason)
                raise FailedPrecondition(f"token rejected: {word}", word)
            assert outcome.card is not None and outcome.claims is not None
            ecard_id, nonce = outcome.card.ecard_id, outcome.claims.nonce
            used_reason = "REPLAYED"
        draft = Draft(
            settlement_id=new_settlement_id(),
            merchant_id=merchant_id,
            idempotency_key=key,
            request_hash=request_hash,
            ecard_id=ecard_id,
            verification_nonce=nonce,
            items=request.items,
            split=split,
            skip_personal_account=request.skip_personal_account,
            used_reason=used_reason,
        )
        try:
            return self._ledger.settle(draft, int(self._clock()))
        except Unavailable:
            if request.token:
                # The token was spent on a settlement that never ran: give it back, so the SDK's retry
                # (same key) settles instead of finding REPLAYED. Should the commit have landed after
                # all, its unique (e-card, nonce) still refuses a second settlement.
                self._verifier.release(outcome)
            raise

    def _open_verification(self, merchant_id: str, handle: str) -> tuple[str, bytes]:
        verification = self._handles.open(handle, merchant_id=merchant_id, now=int(self._clock()))
        if verification.purpose != t.PURPOSE_MEDICAL_SETTLEMENT or verification.assurance < t.ASSURANCE_PIN:
            raise FailedPrecondition(
                "the verification was not for medical settlement with at least a PIN",
                "VERIFICATION_NOT_FOR_SETTLEMENT",
            )
        return verification.ecard_id, verification.nonce

    def _await_record(self, merchant_id: str, key: str, request_hash: bytes) -> SettlementRecord | None:
        deadline = time.monotonic() + self._replay_wait_s
        delay = 0.01
        while True:
            record = self._replay(merchant_id, key, request_hash)
            if record is not None or time.monotonic() >= deadline:
                return record
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def refund(
        self, merchant_id: str, settlement_id: str, idempotency_key: str, reason: str, ask: RefundAsk
    ) -> SettlementRecord:
        validation.refund_request(settlement_id, idempotency_key, reason)
        validation.refund_ask(ask.lines, ask.amount_fen)
        draft = RefundDraft(settlement_id, merchant_id, idempotency_key, refund_hash(settlement_id, reason, ask),
                            reason, ask)
        return self._ledger.refund(draft, int(self._clock()))

    def get(self, merchant_id: str, settlement_id: str) -> SettlementRecord:
        validation.settlement_id_given(settlement_id)
        known = len(settlement_id) <= validation.MAX_SETTLEMENT_ID  # a longer one names nothing
        record = self._ledger.get_settlement(settlement_id) if known else None
        if record is None:
            raise NotFound("no such settlement", "SETTLEMENT_UNKNOWN")
        if record.merchant_id != merchant_id:
            raise PermissionDenied("the settlement belongs to another merchant", "SETTLEMENT_NOT_YOURS")
        return record
