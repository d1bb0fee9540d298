"""Pricing with yearly benefits, as properties (issue 19), on the core's own rules (no server).

For any policy (deductible, fund ratio, yearly cap), any baskets and any sequence of settlements and
refunds (whole, by line, by amount) within a year: the shares add up to the total, the fund never pays
more than the covered amount, the deductible met and the fund paid never pass the policy's, and
refunds give the accumulators back exactly (all of it once everything is refunded).
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings
from ecard_server.core.records import ACTIVE, LineItem, RefundAsk, Refunded, Shares
from ecard_server.core.rules.benefits import Accumulated, Benefit, deductible_back
from ecard_server.core.rules.refunds import add, plan_refund
from ecard_server.core.rules.settlement import Draft, SettlementPolicy

HOSPITAL = t.MERCHANT_KIND_HOSPITAL
POLICY = SettlementPolicy.from_settings(Settings())
CLASSES = [t.DRUG_CLASS_A, t.DRUG_CLASS_B, t.DRUG_CLASS_C]

benefits = st.builds(Benefit, st.integers(0, 50_000), st.fractions(0, 1, max_denominator=100), st.integers(0, 200_000))
baskets = st.lists(st.tuples(st.sampled_from(CLASSES), st.integers(1, 20_000), st.integers(1, 5)), min_size=1,
                   max_size=5)


class Book:
    """One card's year, kept as the ledger keeps it: settlements, refunds, accumulators, balance."""

    def __init__(self, benefit: Benefit, balance: int) -> None:
        self.benefit = benefit
        self.balance = balance
        self.acc = Accumulated()
        self.settlements: list[dict] = []  # type: ignore[type-arg]

    def settle(self, lines: list[tuple[int, int, int]]) -> None:
        items = tuple(LineItem(f"X{n}", "d", c, p, q) for n, (c, p, q) in enumerate(lines))
        split = POLICY.split(items, HOSPITAL)
        draft = Draft("S", "m", "k", b"", "E", b"n", items, split, False, "REPLAYED",
                      benefits={"retiree": self.benefit}, benefit_version="b1")
        paid = draft.shares_under_lock(ACTIVE, False, self.balance, "retiree", self.acc)
        added = draft.accrual("retiree", self.acc)
        assert paid.total_fen == split.total_fen
        assert 0 <= paid.fund_fen <= split.covered_fen
        assert added.fund_fen == paid.fund_fen
        self.acc = Accumulated(self.acc.deductible_fen + added.deductible_fen, self.acc.fund_fen + added.fund_fen)
        self.balance -= paid.account_fen
        self.settlements.append({"items": items, "paid": paid, "lines": draft.line_shares(paid),
                                 "deductible": added.deductible_fen, "done": Refunded.nothing(len(items))})

    def refund(self, which: int, ask: RefundAsk) -> None:
        s = self.settlements[which]
        done: Refunded = s["done"]
        if done.shares == s["paid"]:
            return
        plan = plan_refund(s["items"], s["paid"], done, ask, s["lines"])
        total = s["paid"].total_fen
        back = deductible_back(s["deductible"], total, done.shares.total_fen, done.shares.total_fen + plan.amount_fen)
        self.acc = Accumulated(self.acc.deductible_fen - back, self.acc.fund_fen - plan.shares.fund_fen)
        self.balance += plan.shares.account_fen
        s["done"] = Refunded(add(done.shares, plan.shares),
                             tuple(a + b for a, b in zip(done.line_quantities, plan.line_quantities, strict=True)),
                             tuple(add(a, b) for a, b in zip(done.line_shares, plan.line_shares, strict=True)))

    def check(self) -> None:
        assert 0 <= self.acc.deductible_fen <= self.benefit.deductible_fen
        assert 0 <= self.acc.fund_fen <= self.benefit.yearly_cap_fen
        assert self.balance >= 0


@settings(max_examples=200, deadline=None)
@given(benefits, st.integers(0, 100_000), st.lists(baskets, min_size=1, max_size=6), st.data())
def test_deductible_and_cap_hold_and_refunds_restore_exactly(
    benefit: Benefit, balance: int, year: list[list[tuple[int, int, int]]], data: st.DataObject
) -> None:
    book = Book(benefit, balance)
    for lines in year:
        book.settle(lines)
        book.check()
        if data.draw(st.booleans()):  # a refund of some earlier settlement, of some kind
            which = data.draw(st.integers(0, len(book.settlements) - 1))
            s = book.settlements[which]
            left = s["paid"].total_fen - s["done"].shares.total_fen
            if left:
                ask = data.draw(st.sampled_from([
                    RefundAsk(full=True), RefundAsk(amount_fen=1 + data.draw(st.integers(0, left - 1))),
                ]))
                book.refund(which, ask)
                book.check()
    for which in range(len(book.settlements)):
        book.refund(which, RefundAsk(full=True))
        book.check()
    assert book.acc == Accumulated(0, 0)
    assert book.balance == balance


def test_a_worked_example() -> None:
    # Deductible 10 yuan, 80 %, cap 50 yuan: 30 yuan of class A is 10 toward the deductible, fund 16.
    book = Book(Benefit(1_000, Fraction(4, 5), 5_000), 100_000)
    book.settle([(t.DRUG_CLASS_A, 3_000, 1)])
    assert book.settlements[0]["paid"] == Shares(1_600, 1_400, 0)
    assert book.acc == Accumulated(1_000, 1_600)
    book.refund(0, RefundAsk(amount_fen=1_500))  # half of it: half the deductible, its fund part
    assert book.acc == Accumulated(500, 800)
