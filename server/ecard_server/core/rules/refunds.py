"""Refunds, whole or partial: what a refund gives back to each share, in exact integer fen. No I/O.

A refund names chosen lines of the basket (code, quantity: unit price times quantity each), or an
amount, or neither (all that is left). Its amount R is split over what is still unrefunded of the
settlement's three shares, f + a + s = L (fund, personal account, self-pay), by prefix floors in
that order:

    fund     = floor(f * R / L)
    account  = floor((f + a) * R / L) - fund
    self_pay = R - fund - account

Each part is >= 0 and at most what is left of its share (R <= L, and floor(x) - floor(y) <=
ceil(x - y)); they add up to R; and the refund that takes the last fen (R == L) gives back exactly
what is left of each. So the refunds of a settlement, however it is cut, return each share in full
and never more. Each part is within one fen of its exact proportion; the fund's part is rounded
down, so what the floors leave over goes to the holder (self-pay last).
The store calls `plan_refund` with the totals it read under the settlement's row lock.
"""

from __future__ import annotations

from collections.abc import Sequence

from ecard.errors import FailedPrecondition, InvalidArgument
from ecard_server.core.records import LineItem, RefundAsk, Refunded, RefundPlan, Shares


def lines_by_code(items: Sequence[LineItem], quantities: Sequence[int]) -> tuple[tuple[str, int], ...]:
    """Per-line quantities (by basket index) as (code, quantity), a code on several lines counted once."""
    by_code: dict[str, int] = {}
    for item, quantity in zip(items, quantities, strict=True):
        if quantity:
            by_code[item.code] = by_code.get(item.code, 0) + quantity
    return tuple(by_code.items())


def left_of(paid: Shares, refunded: Shares) -> Shares:
    return Shares(paid.fund_fen - refunded.fund_fen, paid.account_fen - refunded.account_fen,
                  paid.self_pay_fen - refunded.self_pay_fen)


def split_refund(amount_fen: int, left: Shares) -> Shares:
    """`amount_fen` over what is left of each share, by prefix floors (see the module docstring)."""
    total = left.total_fen
    if not 0 <= amount_fen <= total:
        raise ValueError(f"cannot split {amount_fen} fen over {total} fen left")
    if amount_fen == total:
        return left
    fund = left.fund_fen * amount_fen // total
    fund_and_account = (left.fund_fen + left.account_fen) * amount_fen // total
    return Shares(fund, fund_and_account - fund, amount_fen - fund_and_account)


def _line_quantities(items: Sequence[LineItem], done: Sequence[int], lines: Sequence[tuple[str, int]]) -> list[int]:
    """Per basket line, what `lines` gives back: a code's quantity from its lines in basket order."""
    taken = [0] * len(items)
    for code, quantity in lines:
        where = [n for n, item in enumerate(items) if item.code == code]
        if not where:
            raise InvalidArgument(f"code {code} is not in the settlement", "ITEM_NOT_IN_SETTLEMENT")
        wanted = quantity
        for n in where:
            step = min(wanted, items[n].quantity - done[n])
            taken[n] += step
            wanted -= step
        if wanted:
            raise FailedPrecondition(
                f"only {quantity - wanted} of code {code} are left to refund", "REFUND_EXCEEDS_PAID"
            )
    return taken


def plan_refund(items: Sequence[LineItem], paid: Shares, refunded: Refunded, ask: RefundAsk) -> RefundPlan:
    """This refund, given what the settlement paid and what earlier refunds gave back (read under its
    row lock). Raises FailedPrecondition when nothing is left or the ask exceeds what is."""
    left = left_of(paid, refunded.shares)
    left_fen = left.total_fen
    if left_fen == 0:
        raise FailedPrecondition("the settlement is already refunded", "ALREADY_REFUNDED")
    done = refunded.line_quantities
    if ask.whole:
        return RefundPlan(left, tuple(item.quantity - q for item, q in zip(items, done, strict=True)), True)
    if ask.lines:
        taken = _line_quantities(items, done, ask.lines)
        amount = sum(item.unit_price_fen * q for item, q in zip(items, taken, strict=True))
    else:
        taken, amount = [0] * len(items), ask.amount_fen
    if amount > left_fen:
        raise FailedPrecondition(f"{amount} fen is more than the {left_fen} fen left to refund",
                                 "REFUND_EXCEEDS_PAID")
    return RefundPlan(split_refund(amount, left), tuple(taken), amount == left_fen)
