"""The fund decides what it pays (issue 19): a server-held, versioned catalogue prices each line.

On SQLite and PostgreSQL, through the SDK: an import is one new version, refused whole (naming the
item) on one bad item; a line's class and price limit are the catalogue's (a POS-declared class must
match: CLASS_MISMATCH; an unknown or expired code: UNKNOWN_ITEM; the part of a unit price above the
limit is self-pay); a settlement records the catalogue and policy versions and a breakdown per line;
a replica that has not heard of an import yet prices with it anyway.
"""

from __future__ import annotations

import pytest

from ecard import DrugClass, InvalidArgument, PharmacyClient, catalogue_item, line_item
from ecard.testing import World
from ecard.v1 import settlement_pb2
from ecard_server.config import Settings
from tests.helpers.inprocess import InProcessServer

A, B, C = DrugClass.A, DrugClass.B, DrugClass.C
CATALOGUE = [
    catalogue_item("XA01", "amoxicillin 0.25 g x 24", A, 1200),       # sold at 1280: 80 a box over the limit
    catalogue_item("XB07", "ibuprofen 0.3 g x 20", B, 2000),
    catalogue_item("XC11", "vitamin C 100 mg x 100", C, 5000),
    catalogue_item("XA99", "withdrawn", A, 100, valid_to="2020-12-31"),
]
START = 100_000


@pytest.fixture
def world(served: InProcessServer) -> World:
    world = World.seed(served.target, cards=1, balance_fen=START)
    with world.admin() as admin:
        summary = admin.import_catalogue(CATALOGUE)
    assert summary.items == 4 and summary.catalogue_version
    return world


def settle(pos: PharmacyClient, world: World, key: str, items: list[settlement_pb2.LineItem]
           ) -> settlement_pb2.SettlementRecord:
    return pos.settle(items, idempotency_key=key, token=world.mint(0))


def line(code: str, price: int, quantity: int = 1, drug_class: int = 0) -> settlement_pb2.LineItem:
    return line_item(code, "", drug_class, price, quantity)


def test_the_catalogue_prices_each_line(world: World) -> None:
    with world.hospital() as pos:
        record = settle(pos, world, "rx-1", [line("XA01", 1280, 2), line("XB07", 1550), line("XC11", 900)])
    # XA01: 2 x 1200 within the limit covered, 2 x 80 over it; XB07: 1395 covered, 155 self-pay-first;
    # XC11 900 not covered. Covered 3795: the hospital's fund 1897.5 -> 1898, the account 1897.
    assert (record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen) == (1898, 1897, 1215)
    assert [(ln.code, ln.drug_class, ln.covered_fen, ln.self_pay_first_fen, ln.over_limit_fen, ln.not_covered_fen)
            for ln in record.lines] == [("XA01", A, 2400, 0, 160, 0), ("XB07", B, 1395, 155, 0, 0),
                                        ("XC11", C, 0, 0, 0, 900)]
    for ln in record.lines:
        assert ln.covered_fen + ln.self_pay_first_fen + ln.over_limit_fen + ln.not_covered_fen == ln.amount_fen
        assert ln.fund_fen + ln.personal_account_fen + ln.self_pay_fen == ln.amount_fen
    assert record.catalogue_version and record.policy_version.startswith("p-")
    with world.hospital() as pos:
        again = pos.get_settlement(record.settlement_id)
    assert again == record  # GetSettlement returns the versions and the breakdown as they were


def test_a_pos_cannot_raise_the_funds_share_by_declaring_a_class(world: World) -> None:
    with world.hospital() as pos:
        with pytest.raises(InvalidArgument) as mismatch:
            settle(pos, world, "rx-lie", [line("XC11", 900, drug_class=A)])  # vitamin C billed as class A
        assert mismatch.value.reason == "CLASS_MISMATCH" and "line 1" in mismatch.value.message
        honest = settle(pos, world, "rx-c", [line("XC11", 900, drug_class=C)])
        assert (honest.fund_paid_fen, honest.self_pay_fen) == (0, 900)
        for code in ("NOPE", "XA99"):  # unknown, and no longer valid
            with pytest.raises(InvalidArgument) as unknown:
                settle(pos, world, f"rx-{code}", [line("XA01", 100), line(code, 100)])
            assert unknown.value.reason == "UNKNOWN_ITEM" and "line 2" in unknown.value.message
    with world.admin() as admin:
        assert admin.get_ecard(world.ecard_ids[0]).personal_account_balance_fen == START


def test_a_bad_item_refuses_the_whole_import(world: World, served: InProcessServer) -> None:
    before = served.deployment.store.current_catalogue()  # type: ignore[union-attr]
    bad_imports = [
        ([catalogue_item("P1", "a", A, 100), catalogue_item("P2", "b", A, 0)], "item 2", "INVALID_CATALOGUE_ITEM"),
        ([catalogue_item("P1", "a", A, 100), catalogue_item("P1", "b", B, 100)], "item 2",
         "DUPLICATE_CATALOGUE_ITEM"),
        ([catalogue_item("P1", "a", 0, 100)], "item 1", "INVALID_CATALOGUE_ITEM"),
        ([catalogue_item("P1", "a", A, 100, valid_from="2026-13-01")], "item 1", "INVALID_CATALOGUE_ITEM"),
        ([catalogue_item("P1", "a", A, 10**12 + 1)], "item 1", "INVALID_CATALOGUE_ITEM"),
        ([], "empty", "EMPTY_CATALOGUE"),
    ]
    with world.admin() as admin:
        for items, where, reason in bad_imports:
            with pytest.raises(InvalidArgument) as refused:
                admin.import_catalogue(items)
            assert refused.value.reason == reason and where in refused.value.message, refused.value
    after = served.deployment.store.current_catalogue()  # type: ignore[union-attr]
    assert after.version == before.version and set(after.items) == set(before.items)


def test_a_new_version_takes_effect_on_every_replica(world: World, served: InProcessServer) -> None:
    # A second server on the same database that hears none of the first's change notices, so it has not
    # heard of the import below.
    with served.deaf_replica() as replica, \
            PharmacyClient(replica.target, merchant_id=world.hospital_id) as other:
        first = settle(other, world, "rx-v1", [line("XB07", 1000)])
        with world.admin() as admin:
            newer = admin.import_catalogue([catalogue_item("XB07", "ibuprofen", A, 2000)])  # now class A
        second = settle(other, world, "rx-v2", [line("XB07", 1000)])
    assert first.catalogue_version != second.catalogue_version == newer.catalogue_version
    assert (first.lines[0].drug_class, second.lines[0].drug_class) == (B, A)
    assert (first.fund_paid_fen, second.fund_paid_fen) == (450, 500)


def test_a_merchant_kind_may_price_unknown_items_as_self_pay(db_url: str) -> None:
    settings = Settings().with_overrides({"unknown_items_self_pay": ["pharmacy"]})
    with InProcessServer(db=db_url, settings=settings) as served:
        world = World.seed(served.target, cards=1, balance_fen=START)
        with world.admin() as admin:
            admin.import_catalogue(CATALOGUE)
        with world.pharmacy() as pos:
            record = settle(pos, world, "rx-unknown", [line("XA01", 1000), line("NOT-LISTED", 700, 2)])
        assert (record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen) == (0, 1000, 1400)
        unknown = record.lines[1]
        assert (unknown.drug_class, unknown.covered_fen, unknown.not_covered_fen) == (0, 0, 1400)
        with world.hospital() as pos, pytest.raises(InvalidArgument) as refused:
            settle(pos, world, "rx-unknown-h", [line("NOT-LISTED", 700)])
        assert refused.value.reason == "UNKNOWN_ITEM"
