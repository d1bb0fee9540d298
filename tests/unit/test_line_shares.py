"""Which share paid which line, and what a refund of lines gives back (no server).

Issue 16: shares are computed on the basket's totals per class (splitting a line never changes what
anyone pays), allocated to the lines in whole fen, and a line refund gives back that line's own
shares, so a refund never turns personal-account money into cash.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings
from ecard_server.core.records import LineItem, RefundAsk, Refunded, Shares
from ecard_server.core.rules.allocation import allocate
from ecard_server.core.rules.refunds import NOTHING, add, left_of, plan_refund, total_of
from ecard_server.core.rules.settlement import SettlementPolicy, line_shares, shares

A, B, C = t.DRUG_CLASS_A, t.DRUG_CLASS_B, t.DRUG_CLASS_C
PHARMACY, HOSPITAL = t.MERCHANT_KIND_PHARMACY, t.MERCHANT_KIND_HOSPITAL
DEFAULT = SettlementPolicy.from_settings(Settings())


def settle(items: list[LineItem], kind: int, balance: int, skip: bool = False,
           policy: SettlementPolicy = DEFAULT) -> tuple[Shares, tuple[Shares, ...]]:
    split = policy.split(items, kind)
    paid = shares(split, balance, skip_personal_account=skip)
    return paid, line_shares(items, split, paid)


def test_the_issue_example_a_cash_line_comes_back_in_cash() -> None:
    # Class A 25.60 paid by the account, class C 9.00 in cash, at a pharmacy (the fund pays nothing).
    items = [LineItem("XA01", "amoxicillin", A, 1280, 2), LineItem("XC11", "vitamin C", C, 900, 1)]
    paid, lines = settle(items, PHARMACY, 100_000)
    assert paid == Shares(0, 2560, 900)
    assert lines == (Shares(0, 2560, 0), Shares(0, 0, 900))
    back = plan_refund(items, paid, Refunded.nothing(2), RefundAsk(lines=(("XC11", 1),)), lines)
    assert back.shares == Shares(0, 0, 900)  # today's code gives 6.65 to the account and 2.35 in cash
    one_box = plan_refund(items, paid, Refunded.nothing(2), RefundAsk(lines=(("XA01", 1),)), lines)
    assert one_box.shares == Shares(0, 1280, 0)  # account money goes back to the account, never to cash


def test_a_hospital_line_returns_its_own_fund_and_account_parts() -> None:
    # A 1000 and B 1000 and C 500 at a hospital: covered 1000 + 900, fund 950, account 950, self-pay 600.
    items = [LineItem("P", "a", A, 1000, 1), LineItem("Q", "b", B, 500, 2), LineItem("R", "c", C, 500, 1)]
    paid, lines = settle(items, HOSPITAL, 100_000)
    assert paid == Shares(950, 950, 600)
    assert lines == (Shares(500, 500, 0), Shares(450, 450, 100), Shares(0, 0, 500))
    one_b = plan_refund(items, paid, Refunded.nothing(3), RefundAsk(lines=(("Q", 1),)), lines)
    assert one_b.shares == Shares(225, 225, 50)


def test_rounding_once_on_the_basket() -> None:
    # 5 yuan of class A at a hospital: the fund pays 2.50 as one line and as 500 one-fen lines.
    one = settle([LineItem("P", "a", A, 500, 1)], HOSPITAL, 0)[0]
    many = settle([LineItem(f"P{n}", "a", A, 1, 1) for n in range(500)], HOSPITAL, 0)[0]
    assert one == many == Shares(250, 0, 250)
    # class B one-fen lines at a hospital: 45 % (90 % covered, half of it by the fund), not 100 %.
    b_lines = settle([LineItem(f"Q{n}", "b", B, 1, 1) for n in range(100)], HOSPITAL, 0)[0]
    assert b_lines.fund_fen == 45


lines_st = st.lists(
    st.tuples(st.sampled_from([A, B, C]), st.integers(1, 10**6), st.integers(1, 50)), min_size=1, max_size=12
)
policies = st.builds(
    SettlementPolicy, st.fractions(0, 1, max_denominator=100),
    st.fixed_dictionaries({HOSPITAL: st.fractions(0, 1, max_denominator=100)}),
)


@given(lines_st, st.data(), policies, st.integers(0, 10**9), st.booleans())
def test_any_split_of_the_same_basket_gives_the_same_shares(
    lines: list[tuple[int, int, int]], data: st.DataObject, policy: SettlementPolicy, balance: int, skip: bool
) -> None:
    items = [LineItem(f"X{n}", "d", c, price, q) for n, (c, price, q) in enumerate(lines)]
    split_items = []
    for item in items:  # each line cut into pieces of the same unit price, in any order of pieces
        cuts = sorted(set(data.draw(st.lists(st.integers(1, item.quantity - 1), max_size=3)) if item.quantity > 1
                          else []))
        bounds = [0, *cuts, item.quantity]
        split_items += [LineItem(item.code, item.name, item.drug_class, item.unit_price_fen, hi - lo)
                        for lo, hi in itertools.pairwise(bounds)]
    shuffled = data.draw(st.permutations(split_items))
    whole = settle(items, HOSPITAL, balance, skip, policy)[0]
    assert settle(split_items, HOSPITAL, balance, skip, policy)[0] == whole
    assert settle(list(shuffled), HOSPITAL, balance, skip, policy)[0] == whole


@given(lines_st, st.sampled_from([PHARMACY, HOSPITAL]), st.integers(0, 10**8), st.booleans())
def test_line_shares_add_up_and_class_c_is_cash(
    lines: list[tuple[int, int, int]], kind: int, balance: int, skip: bool
) -> None:
    items = [LineItem(f"X{n}", "d", c, price, q) for n, (c, price, q) in enumerate(lines)]
    split = DEFAULT.split(items, kind)
    paid, per_line = settle(items, kind, balance, skip)
    assert total_of(per_line) == paid
    for item, part, covered in zip(items, per_line, split.line_covered_fen, strict=True):
        assert part.total_fen == item.amount_fen
        assert min(part.fund_fen, part.account_fen, part.self_pay_fen) >= 0
        assert part.fund_fen + part.account_fen <= covered  # no line's account pays what it did not cover
        if item.drug_class == C:
            assert part == Shares(0, 0, item.amount_fen)


@settings(max_examples=300)
@given(lines_st, st.sampled_from([PHARMACY, HOSPITAL]), st.integers(0, 10**8), st.data())
def test_no_share_gets_back_more_than_it_paid_for_those_lines(
    lines: list[tuple[int, int, int]], kind: int, balance: int, data: st.DataObject
) -> None:
    """Any sequence of line, quantity and amount refunds, then the rest: no line's share ever gets
    back more than it paid for that line (so the account is never turned into cash), the refund of
    a line's last unit empties it, and the full refund returns every share exactly."""
    items = [LineItem(f"X{n}", "d", c, price, q) for n, (c, price, q) in enumerate(lines)]
    paid, per_line = settle(items, kind, balance)
    done = Refunded.nothing(len(items))
    for _ in range(data.draw(st.integers(0, 8))):
        left = [left_of(p, r) for p, r in zip(per_line, done.line_shares, strict=True)]
        remaining = [i.quantity - q for i, q in zip(items, done.line_quantities, strict=True)]
        if data.draw(st.booleans()) and any(remaining):
            n = data.draw(st.sampled_from([k for k, r in enumerate(remaining) if r]))
            quantity = data.draw(st.integers(1, remaining[n]))
            if not left[n].total_fen:
                continue
            ask = RefundAsk(lines=((items[n].code, quantity),))
        elif sum(x.total_fen for x in left):
            ask = RefundAsk(amount_fen=data.draw(st.integers(1, sum(x.total_fen for x in left))))
        else:
            break
        plan = plan_refund(items, paid, done, ask, per_line)
        for k, part in enumerate(plan.line_shares):
            if ask.lines and k != n:
                assert part == NOTHING  # a line refund touches that line only
            assert part.fund_fen <= left[k].fund_fen
            assert part.account_fen <= left[k].account_fen
            assert part.self_pay_fen <= left[k].self_pay_fen  # cash back is never above the line's cash
            assert min(part.fund_fen, part.account_fen, part.self_pay_fen) >= 0
        if ask.lines and quantity == remaining[n]:
            assert plan.line_shares[n] == left[n]
        done = Refunded(add(done.shares, plan.shares),
                        tuple(a + b for a, b in zip(done.line_quantities, plan.line_quantities, strict=True)),
                        tuple(add(a, b) for a, b in zip(done.line_shares, plan.line_shares, strict=True)))
        assert plan.completes == (done.shares == paid)
        if plan.completes:
            break
    if done.shares != paid:
        rest = plan_refund(items, paid, done, RefundAsk(full=True), per_line)
        done = Refunded(add(done.shares, rest.shares), done.line_quantities,
                        tuple(add(a, b) for a, b in zip(done.line_shares, rest.line_shares, strict=True)))
    assert done.shares == paid
    assert done.line_shares == per_line


def test_allocate_is_exact_and_bounded() -> None:
    assert allocate(10, [1, 1, 1]) == [3, 3, 4]
    assert allocate(0, [0, 0]) == [0, 0]
    assert allocate(7, [0, 7, 0]) == [0, 7, 0]
    assert sum(allocate(999, [3, 5, 7, 11])) == 999
    assert Fraction(allocate(1, [1, 1])[1]) == 1
