"""Refunds, whole or partial: what a refund gives back to each share, in exact integer fen. No I/O.

A refund asks for exactly one of: `full` (all that is left), chosen lines of the basket (code,
quantity), or an amount. Nothing is implied by an empty selection: a request naming none of them is
refused (rules.validation.refund_ask), so an empty selection at the till never refunds everything.

Each line of a settlement keeps the shares that paid it (rules.settlement.line_shares). A line refund
gives back that line's own shares: q of the R units still unrefunded on a line return q/R of what is
left of the line (rounded up to a whole fen; exactly q unit prices unless an amount refund took part
of the line before), split over its shares as below, and all of it when q == R. So a line paid in
cash comes back in cash and account money never comes back as cash. An amount is spread over the
lines by what is left of each (rules.allocation), then within each line over its shares. Within a
line, an amount R is split over what is still unrefunded of its three shares, f + a + s = L (fund,
personal account, self-pay), by prefix floors in that order:

    fund     = floor(f * R / L)
    account  = floor((f + a) * R / L) - fund
    self_pay = R - fund - account

Each part is >= 0 and at most what is left of its share (R <= L, and floor(x) - floor(y) <=
ceil(x - y)); they add up to R; and the refund that takes the last fen (R == L) gives back exactly
what is left of each. So the refunds of a settlement, however it is cut, return each share in full
and never more. Each part is within one fen of its exact proportion; the fund's part is rounded
down, so what the floors leave over goes to the holder (self-pay last).
A settlement made before lines kept their shares is refunded the old way: the same
split over what is left of the whole settlement's shares.
The store calls `plan_refund` with the totals it read under the settlement's row lock.
"""

from __future__ import annotations

from collections.abc import Sequence

from ecard.errors import FailedPrecondition, InvalidArgument
from ecard_server.core.records import LineItem, RefundAsk, Refunded, RefundPlan, Shares
from ecard_server.core.rules.allocation import allocate

NOTHING = Shares(0, 0, 0)


def lines_by_code(items: Sequence[LineItem], quantities: Sequence[int]) -> tuple[tuple[str, int], ...]:
    """Per-line quantities (by basket index) as (code, quantity), a code on several lines counted once."""
    by_code: dict[str, int] = {}
    for item, quantity in zip(items, quantities, strict=True):
        if quantity:
            by_code[item.code] = by_code.get(item.code, 0) + quantity
    return tuple(by_code.items())


def add(a: Shares, b: Shares) -> Shares:
    return Shares(a.fund_fen + b.fund_fen, a.account_fen + b.account_fen, a.self_pay_fen + b.self_pay_fen)


def total_of(parts: Sequence[Shares]) -> Shares:
    whole = NOTHING
    for part in parts:
        whole = add(whole, part)
    return whole


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


def plan_refund(
    items: Sequence[LineItem], paid: Shares, refunded: Refunded, ask: RefundAsk,
    line_paid: Sequence[Shares] = (),
) -> RefundPlan:
    """This refund, given what the settlement paid (in all, and per line when its lines keep their
    shares) and what earlier refunds gave back (read under its row lock). Raises FailedPrecondition
    when nothing is left or the ask exceeds what is."""
    left = left_of(paid, refunded.shares)
    left_fen = left.total_fen
    if left_fen == 0:
        raise FailedPrecondition("the settlement is already refunded", "ALREADY_REFUNDED")
    done = refunded.line_quantities
    if line_paid:
        return _plan_by_line(items, line_paid, refunded, ask)
    if ask.whole:
        return RefundPlan(left, tuple(item.quantity - q for item, q in zip(items, done, strict=True)), True)
    if ask.lines:
        taken = _line_quantities(items, done, ask.lines)
        amount = sum(item.unit_price_fen * q for item, q in zip(items, taken, strict=True))
    else:
        taken, amount = [0] * len(items), ask.amount_fen
    _within(amount, left_fen)
    return RefundPlan(split_refund(amount, left), tuple(taken), amount == left_fen)


def _within(amount: int, left_fen: int) -> None:
    if amount > left_fen:
        raise FailedPrecondition(f"{amount} fen is more than the {left_fen} fen left to refund",
                                 "REFUND_EXCEEDS_PAID")


def _plan_by_line(items: Sequence[LineItem], line_paid: Sequence[Shares], refunded: Refunded,
                  ask: RefundAsk) -> RefundPlan:
    """A refund of a settlement whose lines keep their shares: each line gives back its own."""
    done = refunded.line_quantities
    line_left = [left_of(p, r) for p, r in zip(line_paid, refunded.line_shares, strict=True)]
    remaining = [item.quantity - q for item, q in zip(items, done, strict=True)]
    if ask.whole:
        taken, parts = remaining, line_left
    elif ask.lines:
        taken = _line_quantities(items, done, ask.lines)
        parts = [
            NOTHING if not q else left if q == r else split_refund(-(-left.total_fen * q // r), left)
            for q, r, left in zip(taken, remaining, line_left, strict=True)
        ]
        if not sum(p.total_fen for p in parts):
            raise FailedPrecondition("nothing is left to refund of those lines", "REFUND_EXCEEDS_PAID")
    else:
        taken = [0] * len(items)
        _within(ask.amount_fen, sum(left.total_fen for left in line_left))
        per_line = allocate(ask.amount_fen, [left.total_fen for left in line_left])
        parts = [split_refund(amount, left) for amount, left in zip(per_line, line_left, strict=True)]
    shares = total_of(parts)
    completes = shares.total_fen == sum(left.total_fen for left in line_left)
    return RefundPlan(shares, tuple(taken), completes, tuple(parts))
