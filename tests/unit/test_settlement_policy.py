"""The coverage policy on its own (no server): a table of baskets, the account share, the input checks."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecard.errors import FailedPrecondition, InvalidArgument, NotFound
from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings
from ecard_server.core.records import ACTIVE, CANCELLED, LOST, LineItem, RefundAsk, Split
from ecard_server.core.rules.settlement import Draft, RefundDraft, SettlementPolicy, round_half_up, shares
from ecard_server.core.rules.validation import INT64_MAX, MAX_AMOUNT_FEN
from ecard_server.core.rules.validation import basket as check_basket

A, B, C = t.DRUG_CLASS_A, t.DRUG_CLASS_B, t.DRUG_CLASS_C
PHARMACY, HOSPITAL = t.MERCHANT_KIND_PHARMACY, t.MERCHANT_KIND_HOSPITAL
DEFAULT = SettlementPolicy.from_settings(Settings())


def line(drug_class: int, price: int, quantity: int = 1, code: str = "X") -> LineItem:
    return LineItem(code, "drug", drug_class, price, quantity)


# (what, merchant kind, basket, expected (total, covered, fund))
BASKETS = [
    ("class A counts fully", PHARMACY, [line(A, 1000)], (1000, 1000, 0)),
    ("price times quantity", PHARMACY, [line(A, 250, 4)], (1000, 1000, 0)),
    ("class C is not covered", PHARMACY, [line(C, 1000)], (1000, 0, 0)),
    ("class B: 90 % of 1000", PHARMACY, [line(B, 1000)], (1000, 900, 0)),
    ("class B 333: 299.7 rounds to 300", PHARMACY, [line(B, 333)], (333, 300, 0)),
    ("class B 5: 4.5 rounds half UP to 5", PHARMACY, [line(B, 5)], (5, 5, 0)),
    ("class B 15: 13.5 rounds half up to 14", PHARMACY, [line(B, 15)], (15, 14, 0)),
    ("class B 335 x 3: the line amount is rounded, not each unit", PHARMACY, [line(B, 335, 3)], (1005, 905, 0)),
    # On the basket's class B total: 90 % of 10 = 9 (rounding each 4.5 line up would give 10).
    ("two class B lines round once, on their total", PHARMACY, [line(B, 5, code="P"), line(B, 5, code="Q")],
     (10, 9, 0)),
    ("hospital: the fund pays half of class A", HOSPITAL, [line(A, 1000)], (1000, 1000, 500)),
    ("hospital: 1 fen, the fund's 0.5 rounds up", HOSPITAL, [line(A, 1)], (1, 1, 1)),
    # covered 101 + round(299.7) = 401 -> fund 200.5 -> 201, rounded once on the basket.
    ("hospital: fund rounded once on the basket", HOSPITAL, [line(A, 101, code="P"), line(B, 333, code="Q")],
     (434, 401, 201)),
    # 500 one-fen class A lines: the fund pays half of 500, not 500 halves rounded up (issue 16).
    ("hospital: 500 one-fen lines are 5 yuan", HOSPITAL, [line(A, 1, code=f"P{n}") for n in range(500)],
     (500, 500, 250)),
    ("class B one-fen lines: 90 % of their total", PHARMACY, [line(B, 1, code=f"P{n}") for n in range(100)],
     (100, 90, 0)),
    ("hospital: class C gets nothing from the fund", HOSPITAL, [line(A, 1000, code="P"), line(C, 200, code="Q")],
     (1200, 1000, 500)),
    ("hospital: mixed basket", HOSPITAL, [line(A, 1999, 2, "P"), line(B, 1234, 3, "Q"), line(C, 50, 7, "R")],
     (3998 + 3702 + 350, 3998 + 3332, 3665)),
]


@pytest.mark.parametrize(("kind", "items", "expected"), [b[1:] for b in BASKETS], ids=[b[0] for b in BASKETS])
def test_split_of_basket(kind: int, items: list[LineItem], expected: tuple[int, int, int]) -> None:
    split = DEFAULT.split(items, kind)
    assert (split.total_fen, split.covered_fen, split.fund_fen) == expected
    assert sum(split.line_covered_fen) == split.covered_fen


# (what, merchant kind, basket, balance, skip, expected (fund, account, self_pay))
SHARES = [
    ("balance covers all", PHARMACY, [line(A, 1000)], 100_000, False, (0, 1000, 0)),
    ("balance smaller than covered", PHARMACY, [line(A, 1000)], 300, False, (0, 300, 700)),
    ("empty account", PHARMACY, [line(A, 1000)], 0, False, (0, 0, 1000)),
    ("class B self-pay share and class C are out of pocket", PHARMACY,
     [line(B, 1000, code="P"), line(C, 500, code="Q")], 100_000, False, (0, 900, 600)),
    ("skip_personal_account", PHARMACY, [line(A, 1000)], 100_000, True, (0, 0, 1000)),
    ("hospital: account pays the rest of covered", HOSPITAL, [line(A, 1000)], 100_000, False, (500, 500, 0)),
    ("hospital: small balance", HOSPITAL, [line(A, 1000, code="P"), line(C, 200, code="Q")], 100, False,
     (500, 100, 600)),
    ("hospital: skip keeps the fund share", HOSPITAL, [line(A, 1000)], 100_000, True, (500, 0, 500)),
]


@pytest.mark.parametrize(
    ("kind", "items", "balance", "skip", "expected"), [s[1:] for s in SHARES], ids=[s[0] for s in SHARES]
)
def test_shares_of_basket(kind: int, items: list[LineItem], balance: int, skip: bool,
                          expected: tuple[int, int, int]) -> None:
    split = DEFAULT.split(items, kind)
    got = shares(split, balance, skip_personal_account=skip)
    assert (got.fund_fen, got.account_fen, got.self_pay_fen) == expected
    assert got.fund_fen + got.account_fen + got.self_pay_fen == split.total_fen


def test_ratios_come_from_settings() -> None:
    settings = Settings().with_overrides({"class_b_self_pay_ratio": 0.2, "fund_ratio": {"pharmacy": 0.1}})
    policy = SettlementPolicy.from_settings(settings)
    assert policy.class_b_self_pay_ratio == Fraction(1, 5)
    # B 1000 -> covered 800 -> pharmacy fund 80; the hospital keeps its default half.
    for kind, fund in ((PHARMACY, 80), (HOSPITAL, 400)):
        split = policy.split([line(B, 1000)], kind)
        assert (split.total_fen, split.covered_fen, split.fund_fen, split.line_covered_fen) == (1000, 800, fund, (800,))
    assert policy.version != DEFAULT.version  # each settlement names the policy that priced it


def test_merchant_kind_without_a_ratio_is_refused() -> None:
    with pytest.raises(FailedPrecondition) as failed:
        DEFAULT.split([line(A, 100)], t.MERCHANT_KIND_UNSPECIFIED)
    assert failed.value.reason == "MERCHANT_KIND_UNKNOWN"


def test_round_half_up() -> None:
    assert [round_half_up(Fraction(n, 2)) for n in range(7)] == [0, 1, 1, 2, 2, 3, 3]
    assert round_half_up(Fraction(2997, 10)) == 300
    assert round_half_up(Fraction(2994, 10)) == 299


@given(
    items=st.lists(
        st.builds(line, st.sampled_from([A, B, C]), st.integers(1, 10**9), st.integers(1, 1000)),
        min_size=1,
        max_size=20,
    ),
    kind=st.sampled_from([PHARMACY, HOSPITAL]),
    balance=st.integers(0, 10**12),
    skip=st.booleans(),
    b_ratio=st.fractions(0, 1, max_denominator=1000),
    fund_ratio=st.fractions(0, 1, max_denominator=1000),
)
def test_shares_always_add_up(items: list[LineItem], kind: int, balance: int, skip: bool, b_ratio: Fraction,
                              fund_ratio: Fraction) -> None:
    policy = SettlementPolicy(b_ratio, {kind: fund_ratio})
    split = policy.split(items, kind)
    got = shares(split, balance, skip_personal_account=skip)
    assert split.total_fen == sum(i.unit_price_fen * i.quantity for i in items)
    assert 0 <= split.fund_fen <= split.covered_fen <= split.total_fen
    assert 0 <= got.account_fen <= balance
    assert got.self_pay_fen >= 0
    assert got.fund_fen + got.account_fen + got.self_pay_fen == split.total_fen
    if skip:
        assert got.account_fen == 0


BAD_BASKETS = [
    ("empty", [], "EMPTY_BASKET"),
    ("too many lines", [line(A, 1, code=f"X{n}") for n in range(501)], "BASKET_TOO_LARGE"),
    ("unknown class", [line(9, 100)], "INVALID_DRUG_CLASS"),
    ("zero price", [line(A, 0)], "INVALID_PRICE"),
    ("negative price", [line(A, -100)], "INVALID_PRICE"),
    ("zero quantity", [line(A, 100, 0)], "INVALID_QUANTITY"),
    ("negative quantity", [line(A, 100, -2)], "INVALID_QUANTITY"),
    ("missing code", [line(A, 100, code="")], "MISSING_ITEM_CODE"),
    ("line overflows int64", [line(A, 2**62, 2)], "AMOUNT_TOO_LARGE"),
    ("sum overflows int64", [line(A, INT64_MAX // 2 + 1, code="P"), line(A, INT64_MAX // 2 + 1, code="Q")],
     "AMOUNT_TOO_LARGE"),
    ("line above the ceiling", [line(A, MAX_AMOUNT_FEN + 1)], "AMOUNT_TOO_LARGE"),
    ("price x quantity above the ceiling", [line(A, MAX_AMOUNT_FEN // 2 + 1, 2)], "AMOUNT_TOO_LARGE"),
    ("total above the ceiling", [line(A, MAX_AMOUNT_FEN, code="P"), line(A, 1, code="Q")], "AMOUNT_TOO_LARGE"),
]


@pytest.mark.parametrize(("items", "reason"), [b[1:] for b in BAD_BASKETS], ids=[b[0] for b in BAD_BASKETS])
def test_bad_basket_is_invalid_argument(items: list[LineItem], reason: str) -> None:
    with pytest.raises(InvalidArgument) as failed:
        check_basket(items, Settings().max_basket_items)
    assert failed.value.reason == reason


def test_without_a_catalogue_a_line_needs_its_class() -> None:
    check_basket([line(t.DRUG_CLASS_UNSPECIFIED, 100)], 500)  # the catalogue may give it
    with pytest.raises(InvalidArgument) as failed:
        DEFAULT.split([line(t.DRUG_CLASS_UNSPECIFIED, 100)], PHARMACY)
    assert failed.value.reason == "INVALID_DRUG_CLASS"


def test_largest_basket_that_fits_is_accepted() -> None:
    items = [line(A, MAX_AMOUNT_FEN // 2, code="P"), line(B, MAX_AMOUNT_FEN // 2, code="Q")]
    check_basket(items, 500)
    assert DEFAULT.split(items, HOSPITAL).total_fen == MAX_AMOUNT_FEN


def draft(split: Split, used_reason: str = "VERIFICATION_USED") -> Draft:
    return Draft("S1", "ph-1", "k1", b"h", "E1", b"n" * 16, (line(A, split.total_fen),), split, False, used_reason)


def test_a_settlement_is_decided_on_what_was_read_under_the_row_lock() -> None:
    basket = Split(total_fen=1_000, covered_fen=1_000, fund_fen=0, line_covered_fen=(1_000,))
    assert draft(basket).shares_under_lock(ACTIVE, False, 600) == shares(basket, 600, skip_personal_account=False)
    refused = [
        (None, False, "CARD_UNKNOWN"),
        (ACTIVE, True, "REPLAYED"),  # the credential settled before: its own reason
        (LOST, False, "CARD_LOST"),
        (CANCELLED, False, "CARD_CANCELLED"),
    ]
    for status, settled_before, reason in refused:
        with pytest.raises(FailedPrecondition) as failed:
            draft(basket, used_reason="REPLAYED").shares_under_lock(status, settled_before, 600)
        assert failed.value.reason == reason


def test_only_the_settling_merchant_refunds_a_settlement_that_exists() -> None:
    refund = RefundDraft("S1", "ph-1", "r1", b"h", "returned", RefundAsk(full=True))
    refund.check_owner("ph-1")
    with pytest.raises(NotFound):
        refund.check_owner(None)
    with pytest.raises(NotFound) as other:  # another merchant's: the same answer as an unknown one
        refund.check_owner("ph-2")
    assert other.value.reason == "SETTLEMENT_UNKNOWN" and str(other.value).endswith("no such settlement")
