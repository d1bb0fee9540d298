"""Every amount path is validated against one documented ceiling (issue 16: overflow answered INTERNAL).

A credit that overflowed 64 bits crashed the call (INTERNAL) and balances had no upper bound. Now each
amount a request carries is at most validation.MAX_AMOUNT_FEN (INVALID_ARGUMENT AMOUNT_TOO_LARGE), a
credit may not take a balance above MAX_BALANCE_FEN (FAILED_PRECONDITION BALANCE_LIMIT_EXCEEDED), on
SQLite and PostgreSQL, in the server; nothing moves on a refusal.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ecard import DrugClass, FailedPrecondition, InvalidArgument, line_item, physical_cards
from ecard.testing import World, fake_holder
from ecard_server.core.rules.validation import MAX_AMOUNT_FEN, MAX_BALANCE_FEN
from tests.helpers.inprocess import InProcessServer

INT64_MAX = 2**63 - 1


# One server per backend for the module, not one per test: each test seeds a world of its own (its
# own card and merchants), and what is tested is the ceiling, not a fresh server.
@pytest.fixture(scope="module")
def served(module_db_url: str) -> Iterator[InProcessServer]:
    with InProcessServer(db=module_db_url) as running:
        yield running


@pytest.fixture
def world(served: InProcessServer) -> World:
    return World.seed(served.target, cards=1, balance_fen=1_000)


def balance(world: World) -> int:
    with world.admin() as admin:
        return admin.get_ecard(world.ecard_ids[0]).personal_account_balance_fen


def test_a_credit_cannot_overflow_or_pass_the_ceiling(world: World) -> None:
    card_no = world.cards[0][0]
    with world.admin() as admin:
        for n, amount in enumerate([INT64_MAX, INT64_MAX - 999, MAX_AMOUNT_FEN + 1]):
            with pytest.raises(InvalidArgument) as big:
                admin.credit_account(card_no, amount, f"big-{n}")  # INTERNAL (int64 overflow) before
            assert big.value.reason == "AMOUNT_TOO_LARGE"
        assert balance(world) == 1_000
        admin.credit_account(card_no, MAX_BALANCE_FEN - 1_000, "to-the-top")
        assert balance(world) == MAX_BALANCE_FEN
        with pytest.raises(FailedPrecondition) as full:
            admin.credit_account(card_no, 1, "one-more")
        assert full.value.reason == "BALANCE_LIMIT_EXCEEDED"
        assert balance(world) == MAX_BALANCE_FEN


def test_settle_and_refund_amounts_above_the_ceiling_are_invalid(world: World) -> None:
    with world.hospital() as pos:
        for n, basket in enumerate([
            [line_item("XA01", "a", DrugClass.A, INT64_MAX, 1)],
            [line_item("XA01", "a", DrugClass.A, MAX_AMOUNT_FEN, 2)],
            [line_item("XA01", "a", DrugClass.A, MAX_AMOUNT_FEN), line_item("XC11", "c", DrugClass.C, 1)],
        ]):
            with pytest.raises(InvalidArgument) as big:
                pos.settle(basket, idempotency_key=f"big-{n}", token=world.mint(0))
            assert big.value.reason == "AMOUNT_TOO_LARGE"
        record = pos.settle([line_item("XA01", "a", DrugClass.A, 500)], idempotency_key="ok", token=world.mint(0))
        with pytest.raises(InvalidArgument) as big_refund:
            pos.refund(record.settlement_id, idempotency_key="big-refund", amount_fen=INT64_MAX)
        assert big_refund.value.reason == "AMOUNT_TOO_LARGE"
        assert pos.get_settlement(record.settlement_id).refunded_fen == 0


def test_an_opening_balance_above_the_ceiling_is_a_rejected_row(world: World) -> None:
    rows = [(*fake_holder(n, "ceil"), "330200", amount)
            for n, amount in enumerate([MAX_BALANCE_FEN + 1, INT64_MAX, MAX_BALANCE_FEN])]
    with world.admin() as admin:
        summary = admin.enroll_cards(physical_cards(rows))
    assert (summary.enrolled, summary.rejected) == (1, 2)
    assert all("ceiling" in error for error in summary.errors), summary.errors
