"""The refund split on its own (no server): exact integer fen, never above what was paid, in proportion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecard.errors import FailedPrecondition, InvalidArgument
from ecard.v1 import types_pb2 as t
from ecard_server.core.records import LineItem, RefundAsk, Refunded, RefundPlan, Shares
from ecard_server.core.rules import validation
from ecard_server.core.rules.refunds import lines_by_code, plan_refund, split_refund

A = t.DRUG_CLASS_A
fen = st.integers(min_value=0, max_value=10**12)
paid_shares = st.builds(Shares, fen, fen, fen).filter(lambda s: s.total_fen > 0)


def as_tuple(s: Shares) -> tuple[int, int, int]:
    return (s.fund_fen, s.account_fen, s.self_pay_fen)


def add(a: Shares, b: Shares) -> Shares:
    return Shares(a.fund_fen + b.fund_fen, a.account_fen + b.account_fen, a.self_pay_fen + b.self_pay_fen)


def basket(n: int, price: int = 100, quantity: int = 3) -> list[LineItem]:
    return [LineItem(f"X{i}", "drug", A, price + i, quantity) for i in range(n)]


def test_split_examples() -> None:
    # 1,000 fen paid as fund 500 / account 300 / self-pay 200: a tenth returns a tenth of each.
    assert split_refund(100, Shares(500, 300, 200)) == Shares(50, 30, 20)
    # 1 fen of 3 + 3 + 3: the fund's 0.33 and the account's floor(0.67) - 0 round down, self-pay takes it.
    assert split_refund(1, Shares(3, 3, 3)) == Shares(0, 0, 1)
    assert split_refund(2, Shares(3, 3, 3)) == Shares(0, 1, 1)
    # The last fen of a share goes back with the refund that takes what is left.
    assert split_refund(7, Shares(0, 7, 0)) == Shares(0, 7, 0)
    assert split_refund(0, Shares(1, 2, 3)) == Shares(0, 0, 0)
    with pytest.raises(ValueError):
        split_refund(7, Shares(1, 2, 3))


@given(paid_shares, st.lists(st.integers(min_value=1, max_value=2**62), max_size=12))
def test_refunds_in_any_cut_return_each_share_exactly(paid: Shares, cuts: list[int]) -> None:
    """However the total is cut into partial refunds, each part is >= 0 and within a fen of its
    proportion, the running totals never pass what was paid, and the last refund leaves nothing."""
    returned = Shares(0, 0, 0)
    amounts = []
    left_fen = paid.total_fen
    for cut in cuts:
        if left_fen <= 1:
            break
        amounts.append(1 + cut % (left_fen - 1))  # leaves at least a fen for the final refund
        left_fen -= amounts[-1]
    amounts.append(left_fen)
    for amount in amounts:
        left = Shares(*(p - r for p, r in zip(as_tuple(paid), as_tuple(returned), strict=True)))
        part = split_refund(amount, left)
        assert part.total_fen == amount
        for got, rest in zip(as_tuple(part), as_tuple(left), strict=True):
            assert 0 <= got <= rest
            assert abs(got * left.total_fen - rest * amount) < left.total_fen  # |got - rest * amount / left| < 1 fen
        returned = add(returned, part)
        assert all(r <= p for r, p in zip(as_tuple(returned), as_tuple(paid), strict=True))
    assert returned == paid


@given(st.integers(min_value=1, max_value=8), st.data())
def test_line_refunds_then_the_rest_return_the_basket_exactly(lines: int, data: st.DataObject) -> None:
    items = basket(lines)
    price_total = sum(i.amount_fen for i in items)
    fund = data.draw(st.integers(0, price_total))
    account = data.draw(st.integers(0, price_total - fund))
    paid = Shares(fund, account, price_total - fund - account)
    refunded = Refunded.nothing(lines)
    for _ in range(data.draw(st.integers(0, 6))):
        code = data.draw(st.integers(0, lines - 1))
        left_q = items[code].quantity - refunded.line_quantities[code]
        if left_q == 0:
            with pytest.raises(FailedPrecondition) as over:
                plan_refund(items, paid, refunded, RefundAsk(lines=((f"X{code}", 1),)))
            assert over.value.reason == ("ALREADY_REFUNDED" if refunded.shares == paid else "REFUND_EXCEEDS_PAID")
            continue
        quantity = data.draw(st.integers(1, left_q))
        plan = plan_refund(items, paid, refunded, RefundAsk(lines=((f"X{code}", quantity),)))
        assert plan.amount_fen == items[code].unit_price_fen * quantity
        refunded = merged(refunded, plan)
        assert plan.completes == (refunded.shares == paid)
    if refunded.shares != paid:  # else every line is back already
        refunded = merged(refunded, plan_refund(items, paid, refunded, RefundAsk(full=True)))
    assert refunded.shares == paid
    assert refunded.line_quantities == tuple(i.quantity for i in items)
    with pytest.raises(FailedPrecondition) as again:
        plan_refund(items, paid, refunded, RefundAsk(amount_fen=1))
    assert again.value.reason == "ALREADY_REFUNDED"


def merged(before: Refunded, plan: RefundPlan) -> Refunded:
    return Refunded(add(before.shares, plan.shares),
                    tuple(a + b for a, b in zip(before.line_quantities, plan.line_quantities, strict=True)),
                    before.line_shares)


def test_never_more_than_is_left() -> None:
    items = basket(2)  # X0 100 x 3, X1 101 x 3: 603 fen
    paid = Shares(0, 600, 3)
    after = merged(Refunded.nothing(2), plan_refund(items, paid, Refunded.nothing(2), RefundAsk(amount_fen=500)))
    with pytest.raises(FailedPrecondition) as over:
        plan_refund(items, paid, after, RefundAsk(amount_fen=104))
    assert over.value.reason == "REFUND_EXCEEDS_PAID"
    with pytest.raises(FailedPrecondition):  # two of X0 are 200 fen: more than the 103 left
        plan_refund(items, paid, after, RefundAsk(lines=(("X0", 2),)))
    with pytest.raises(FailedPrecondition):
        plan_refund(items, paid, Refunded.nothing(2), RefundAsk(lines=(("X1", 4),)))
    assert plan_refund(items, paid, after, RefundAsk(full=True)).amount_fen == 103


def test_a_code_on_two_lines_is_taken_in_basket_order() -> None:
    items = [LineItem("P", "a", A, 100, 2), LineItem("P", "a", A, 90, 2)]
    plan = plan_refund(items, Shares(0, 380, 0), Refunded.nothing(2), RefundAsk(lines=(("P", 3),)))
    assert plan.line_quantities == (2, 1)
    assert plan.amount_fen == 290
    assert lines_by_code(items, plan.line_quantities) == (("P", 3),)


@pytest.mark.parametrize(("ask", "reason"), [
    ({}, "REFUND_SELECTION_MISSING"),  # what an older client sends for "everything": refused, never all
    ({"amount_fen": 0}, "REFUND_SELECTION_MISSING"),
    ({"lines": ()}, "REFUND_SELECTION_MISSING"),
    ({"full": True, "amount_fen": 5}, "REFUND_SELECTION_AMBIGUOUS"),
    ({"full": True, "lines": (("X0", 1),)}, "REFUND_SELECTION_AMBIGUOUS"),
    ({"amount_fen": validation.MAX_AMOUNT_FEN + 1}, "AMOUNT_TOO_LARGE"),
    ({"lines": (("X0", 1),), "amount_fen": 5}, "REFUND_LINES_AND_AMOUNT"),
    ({"amount_fen": -1}, "NEGATIVE_AMOUNT"),
    ({"lines": (("X0", 0),)}, "INVALID_QUANTITY"),
    ({"lines": (("", 1),)}, "MISSING_ITEM_CODE"),
    ({"lines": (("X0", 1), ("X0", 1))}, "DUPLICATE_REFUND_LINE"),
])
def test_bad_asks_are_invalid_arguments(ask: dict, reason: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidArgument) as bad:
        validation.refund_ask(ask.get("lines", ()), ask.get("amount_fen", 0), ask.get("full", False))
    assert bad.value.reason == reason


def test_a_code_not_in_the_basket() -> None:
    with pytest.raises(InvalidArgument) as bad:
        plan_refund(basket(1), Shares(0, 0, 300), Refunded.nothing(1), RefundAsk(lines=(("NOPE", 1),)))
    assert bad.value.reason == "ITEM_NOT_IN_SETTLEMENT"
