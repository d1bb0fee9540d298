"""The settlement rules: the coverage split, the shares under the card's lock, the request's identity.

    SettlementPolicy.split(items, merchant_kind)   on the basket's totals per class, rounded half up
                                                    to whole fen once (so splitting a line into
                                                    several never changes what anyone pays):
        amount  = unit_price_fen * quantity         per line; A, B, C: the class totals
        covered = A + B * (1 - class_b_self_pay_ratio)
        fund    = covered * fund_ratio[merchant kind]
    Draft.shares_under_lock(status, used, balance)  from what the ledger read under the card's row lock:
        account  = min(balance, covered - fund)    (0 with skip_personal_account)
        self_pay = total - fund - account           so fund + account + self_pay == total, always
    line_shares(items, split, shares)              the three shares allocated to the lines in whole
                                                    fen (rules.allocation): class B's covered part
                                                    over the B lines by amount, the fund over the
                                                    lines by covered, the account by what the fund
                                                    left of covered; self-pay is the rest of each
                                                    line, so a class C line is all self-pay. A line
                                                    refund gives back that line's own shares.

A Draft (a checked, priced settlement) and a RefundDraft are what the service hands the ledger
(core.ports.Ledger); the ledger calls back into them, so no rule is written in SQL. No I/O here.
"""

from __future__ import annotations

import base64
import hashlib
import math
import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from ecard.errors import FailedPrecondition, InvalidArgument, NotFound
from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings
from ecard_server.core.records import (
    ACTIVE,
    NO_CATALOGUE,
    NOT_ACTIVE_REASON,
    Catalogue,
    LineItem,
    LinePricing,
    RefundAsk,
    SettleInput,
    Shares,
    Split,
    quick_init,
)
from ecard_server.core.rules.allocation import allocate, times_half_up
from ecard_server.core.rules.benefits import (
    DEFAULT_CATEGORY,
    NO_ACCUMULATION,
    Accumulated,
    Benefit,
    fund_and_deductible,
)
from ecard_server.core.rules.compact import compact_json
from ecard_server.core.rules.quotes import Quote

_HALF = Fraction(1, 2)


class StalePricing(FailedPrecondition):
    """A settlement priced with a catalogue that is no longer the current one (an import committed
    meanwhile, and this process had not heard of it yet): the service prices it again."""


@quick_init
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
    quote: Quote | None = None  # what the holder was shown: settle exactly that, or QUOTE_STALE
    terminal_id: str = ""
    operator_id: str = ""
    # The benefit policy's benefits for this merchant's kind, by person category, and its version
    # (None and "": no policy imported, the settings' fund ratio counts, no deductible, no cap).
    benefits: Mapping[str, Benefit] | None = None
    benefit_version: str = ""
    visit_id: str = ""  # a SettleVisit: the visit it closes, as priced at `visit_revision`
    visit_revision: int = 0

    def shares_under_lock(self, card_status: int | None, settled_before: bool, balance_fen: int,
                          category: str = DEFAULT_CATEGORY, accumulated: Accumulated = NO_ACCUMULATION) -> Shares:
        """The rules of a settlement, given what the ledger read under the card's row lock: the card's
        status (None: no such e-card), whether this credential already settled, the balance, the
        holder's person category and this year's accumulators. Returns the three shares, or raises
        FailedPrecondition."""
        if card_status is None:
            raise FailedPrecondition("no such e-card", "CARD_UNKNOWN")
        if settled_before:
            raise FailedPrecondition("this verification has already been used to settle", self.used_reason)
        if card_status != ACTIVE:
            raise FailedPrecondition("the card is not active", NOT_ACTIVE_REASON.get(card_status, "CARD_CANCELLED"))
        fund, _ = self._fund(category, accumulated)
        paid = shares(self.split, balance_fen, skip_personal_account=self.skip_personal_account, fund_fen=fund)
        if self.quote is not None:
            self.quote.stale_unless(paid, balance_fen, accumulated)
        return paid

    def _fund(self, category: str, accumulated: Accumulated) -> tuple[int, int]:
        """(fund, toward the deductible): the policy's benefit for the holder, or the settings' ratio."""
        if self.benefits is None:
            return self.split.fund_fen, 0
        benefit = self.benefits.get(category)
        if benefit is None:
            raise FailedPrecondition(f"the benefit policy has no benefit for {category}", "NO_BENEFIT")
        return fund_and_deductible(self.split.covered_fen, benefit, accumulated)

    def accrual(self, category: str, accumulated: Accumulated) -> Accumulated:
        """What this settlement adds to the year's accumulators (after shares_under_lock)."""
        fund, toward = self._fund(category, accumulated)
        return Accumulated(toward, fund)

    def check_policy(self, current_version: str) -> None:
        """Like check_catalogue, for the benefit policy."""
        if current_version != self.benefit_version:
            if self.quote is not None:
                raise FailedPrecondition("the benefit policy changed since the quote: quote again", "QUOTE_STALE")
            raise StalePricing(f"priced with policy {self.benefit_version or 'none'}, now {current_version}",
                               "POLICY_CHANGED")

    def check_catalogue(self, current_version: str) -> None:
        """Raises StalePricing unless the basket was priced with the current catalogue version."""
        if current_version != self.split.catalogue_version:
            if self.quote is not None:  # never a split other than the one the holder was shown
                raise FailedPrecondition("the catalogue changed since the quote: quote again", "QUOTE_STALE")
            raise StalePricing(f"priced with catalogue {self.split.catalogue_version or 'none'}, now "
                               f"{current_version}", "CATALOGUE_CHANGED")

    def line_shares(self, paid: Shares) -> tuple[Shares, ...]:
        """Which share paid which line, for the shares the settlement takes (see line_shares)."""
        return line_shares(self.items, self.split, paid)


@dataclass(frozen=True, slots=True)
class RefundDraft:
    settlement_id: str
    merchant_id: str
    idempotency_key: str
    request_hash: bytes
    reason: str
    ask: RefundAsk  # what to give back: rules.refunds.plan_refund, with what the ledger read under the row lock
    terminal_id: str = ""
    operator_id: str = ""
    reversal: bool = False  # made by a ReverseSettlement (its key: reversal_refund_key of the Settle's)

    def check_owner(self, owner: str | None) -> None:
        """The settlement exists (`owner` is its merchant) and belongs to the refunding merchant; another
        merchant's answers exactly as an unknown one, so that ids cannot be probed for existence."""
        if owner is None or owner != self.merchant_id:
            raise NotFound("no such settlement", "SETTLEMENT_UNKNOWN")


REVERSAL_REASON = "reversal"
REVERSAL_KEY_PREFIX = "reversal:"  # a reversal's refund key; a Refund may not choose one of these


def reversal_refund_key(settle_key: str) -> str:
    return REVERSAL_KEY_PREFIX + settle_key


@dataclass(frozen=True, slots=True)
class ReversalDraft:
    """A ReverseSettlement: the Settle's key, and the till and cashier asking."""

    merchant_id: str
    idempotency_key: str
    terminal_id: str = ""
    operator_id: str = ""

    def refund(self, settlement_id: str) -> RefundDraft:
        """The refund that gives back all that is left of the settlement made under the key."""
        ask = RefundAsk(full=True)
        return RefundDraft(settlement_id, self.merchant_id, reversal_refund_key(self.idempotency_key),
                           refund_hash(settlement_id, REVERSAL_REASON, ask), REVERSAL_REASON, ask,
                           self.terminal_id, self.operator_id, reversal=True)


def refuse_reversed() -> None:
    """A Settle whose key was reversed before anything was settled under it."""
    raise FailedPrecondition("this idempotency key was reversed: nothing can be settled under it", "REVERSED")



def round_half_up(value: Fraction) -> int:
    """Whole fen, halves up (value is never negative here)."""
    return math.floor(value + _HALF)


def line_shares(items: Sequence[LineItem], split: Split, paid: Shares) -> tuple[Shares, ...]:
    """The basket's three shares allocated to its lines in whole fen, deterministically: the fund over
    the lines by what each has covered, the account by what the fund left of each line's covered part,
    self-pay the rest. Each line's shares add up to its amount and none is negative, so a class C line
    (nothing covered) is all self-pay, and no line's account part exceeds its covered part."""
    covered = split.line_covered_fen
    fund = allocate(paid.fund_fen, covered)
    account = allocate(paid.account_fen, [c - f for c, f in zip(covered, fund, strict=True)])
    return tuple([Shares(f, a, item.unit_price_fen * item.quantity - f - a)
                  for item, f, a in zip(items, fund, account, strict=True)])


def shares(split: Split, balance_fen: int, *, skip_personal_account: bool, fund_fen: int | None = None) -> Shares:
    """`fund_fen`: the fund's share when the holder's benefits decided it (default: the split's)."""
    fund = split.fund_fen if fund_fen is None else fund_fen
    due = 0 if skip_personal_account else split.covered_fen - fund
    account = max(0, min(balance_fen, due))
    return Shares(fund, account, split.total_fen - fund - account)


@dataclass(frozen=True)
class SettlementPolicy:
    """The coverage rules of the contract, with exact ratios from the server's settings."""

    class_b_self_pay_ratio: Fraction
    fund_ratio: Mapping[int, Fraction]
    unknown_items_self_pay: frozenset[int] = frozenset()  # merchant kinds: an unknown code is not covered

    @classmethod
    def from_settings(cls, settings: Settings) -> SettlementPolicy:
        return cls(settings.class_b_self_pay_ratio, dict(settings.fund_ratio), settings.unknown_items_self_pay)

    @cached_property
    def version(self) -> str:
        """The policy's identity, recorded with each settlement it priced: a digest of its ratios."""
        form: list[object] = [str(self.class_b_self_pay_ratio), sorted((k, str(v)) for k, v in self.fund_ratio.items())]
        if self.unknown_items_self_pay:  # (the digest of a policy without them stays what it was)
            form.append(sorted(self.unknown_items_self_pay))
        return "p-" + _digest(form).hex()[:12]

    def split(self, items: Sequence[LineItem], merchant_kind: int, catalogue: Catalogue = NO_CATALOGUE,
              day: str = "") -> Split:
        """Prices a checked basket. With a catalogue (version != ""), each line's class and unit price
        limit are the catalogue's, on `day` (YYYY-MM-DD, Asia/Shanghai): a code it does not hold (or not
        on that day) is UNKNOWN_ITEM, a POS-declared class other than the catalogue's CLASS_MISMATCH,
        and the part of a unit price above the limit is self-pay. The shares are computed once on the
        basket's totals per class (rounding per line would pay a fen more for each line the POS splits
        off), then covered is allocated to the lines."""
        ratio = self.fund_ratio.get(merchant_kind)
        if ratio is None:
            raise FailedPrecondition("the merchant's kind has no fund ratio", "MERCHANT_KIND_UNKNOWN")
        entries = catalogue.items if catalogue.version else None
        classes, within = [], []  # per line: its class, and its amount within the price limit
        total = within_b = 0
        any_b = False
        for number, item in enumerate(items, start=1):
            price, declared = item.unit_price_fen, item.drug_class
            entry = None if entries is None else entries.get(item.code)
            # The common line is one lookup: an item valid every day, its class not declared or the same.
            # Anything else (no catalogue, unknown, a validity window, a mismatch) is _priced's to decide.
            if entry is not None and not entry.valid_from and not entry.valid_to and declared in (0, entry.drug_class):
                drug_class, limit = entry.drug_class, entry.price_limit_fen
            else:
                drug_class, limit = self._priced(number, item, catalogue, day, merchant_kind)
            inside = (limit if limit and price > limit else price) * item.quantity  # min(price, limit or price)
            classes.append(drug_class)
            within.append(inside)
            total += price * item.quantity
            if drug_class == t.DRUG_CLASS_B:
                within_b += inside
                any_b = True
        covered_b = allocate(times_half_up(within_b, self._class_b_covered),
                             [w if c == t.DRUG_CLASS_B else 0 for c, w in zip(classes, within, strict=True)]) \
            if any_b else None
        lines, line_covered = [], []
        for n, (item, drug_class, inside) in enumerate(zip(items, classes, within, strict=True)):
            over = item.unit_price_fen * item.quantity - inside
            if drug_class == t.DRUG_CLASS_A:
                line = LinePricing(drug_class, inside, 0, over, 0)
            elif drug_class == t.DRUG_CLASS_B:
                share_b = covered_b[n]  # type: ignore[index]  # allocated: a line is class B
                line = LinePricing(drug_class, share_b, inside - share_b, over, 0)
            else:
                line = LinePricing(drug_class, 0, 0, over, inside)
            lines.append(line)
            line_covered.append(line.covered_fen)
        covered = sum(line_covered)
        return Split(total, covered, times_half_up(covered, ratio), tuple(line_covered), tuple(lines),
                     catalogue.version, self.version)

    @cached_property
    def _class_b_covered(self) -> Fraction:
        return 1 - self.class_b_self_pay_ratio

    def _priced(self, number: int, item: LineItem, catalogue: Catalogue, day: str, kind: int) -> tuple[int, int]:
        """A line's class and unit price limit (0: none): the catalogue's, or without one the POS's. An
        unknown code is UNKNOWN_ITEM, or not covered at all (class unset) where the settings say so."""
        if not catalogue.version:
            if item.drug_class not in (t.DRUG_CLASS_A, t.DRUG_CLASS_B, t.DRUG_CLASS_C):
                raise InvalidArgument(f"line {number}: drug_class must be A, B or C (no catalogue is imported)",
                                      "INVALID_DRUG_CLASS")
            return item.drug_class, 0
        entry = catalogue.items.get(item.code)
        if entry is None or not entry.valid_on(day):
            if kind in self.unknown_items_self_pay:
                return t.DRUG_CLASS_UNSPECIFIED, 0
            raise InvalidArgument(
                f"line {number}: code {item.code} is not in catalogue version {catalogue.version} on {day}",
                "UNKNOWN_ITEM",
            )
        if item.drug_class and item.drug_class != entry.drug_class:
            raise InvalidArgument(
                f"line {number}: code {item.code} is class {t.DrugClass.Name(entry.drug_class)[-1]} in the "
                "catalogue, not the class the POS declared", "CLASS_MISMATCH",
            )
        return entry.drug_class, entry.price_limit_fen


def _digest(form: object) -> bytes:
    return hashlib.sha256(compact_json(form).encode()).digest()


_HASHED_LINE = operator.attrgetter("code", "name", "drug_class", "unit_price_fen", "quantity")


def settle_hash(request: SettleInput) -> bytes:
    """The request's identity for idempotency: same key and same hash is the same Settle."""
    kind = "verification_id" if request.verification_id else "quote_id" if request.quote_id else "token"
    return _digest([
        "settle",
        kind,
        request.verification_id or request.quote_id or request.token,
        list(map(_HASHED_LINE, request.items)),  # each line a tuple, written as the list it was
        request.skip_personal_account,
    ])  # not the till nor the cashier: the same basket resent from another till is the same Settle


def refund_hash(settlement_id: str, reason: str, ask: RefundAsk) -> bytes:
    if ask.whole:  # the form of a whole refund before partial ones: its keys stay the same request
        return _digest(["refund", settlement_id, reason])
    return _digest(["refund", settlement_id, reason, [list(line) for line in ask.lines], ask.amount_fen])


def new_settlement_id() -> str:
    """'S' and 16 base32 characters (80 random bits)."""
    return "S" + base64.b32encode(os.urandom(10)).decode("ascii")
