"""Reconciliation (对账) over real `ecard serve` processes (SQLite, PostgreSQL): ListSettlements pages and
DailyTotals, which must equal the sums of the day's listed records to the fen."""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterator
from typing import Any

import pytest

from ecard import DrugClass, InvalidArgument, PermissionDenied, line_item
from ecard.testing import World
from ecard.v1 import settlement_pb2
from ecard.v1.types_pb2 import MERCHANT_KIND_PHARMACY
from ecard_server.cli import main
from ecard_server.core.rules.statements import SHANGHAI, day_range
from tests.helpers.inprocess import InProcessServer

A, B, C = DrugClass.A, DrugClass.B, DrugClass.C
BASKETS = [
    [line_item("XA01", "amoxicillin", A, 1280, 2), line_item("XB07", "ibuprofen", B, 1550),
     line_item("XC11", "vitamin C", C, 900)],
    [line_item("XB07", "ibuprofen", B, 1551, 3)],
    [line_item("XA02", "paracetamol", A, 333), line_item("XC12", "zinc", C, 777)],
]


# One server per backend for the module, not one per test: every test seeds a world of its own (its own
# merchants, so its own listings and day totals); the operator's day, over every merchant of the server,
# is checked for adding up, whoever else settled that day.
@pytest.fixture(scope="module")
def served(module_db_url: str) -> Iterator[InProcessServer]:
    with InProcessServer(db=module_db_url) as running:
        yield running


def today() -> str:
    return datetime.datetime.now(SHANGHAI).date().isoformat()


def sums(records: list[settlement_pb2.SettlementRecord]) -> dict[str, int]:
    """The statement a POS makes of its own receipts: what DailyTotals must say."""
    out = dict.fromkeys(("settlements", "total_fen", "fund_fen", "personal_account_fen", "self_pay_fen", "refunds",
                         "refunded_fen", "fund_refunded_fen", "personal_account_refunded_fen",
                         "self_pay_refunded_fen", "reversals", "reversed_fen", "net_fen"), 0)
    for r in records:
        out["settlements"] += 1
        out["total_fen"] += r.total_fen
        out["fund_fen"] += r.fund_paid_fen
        out["personal_account_fen"] += r.personal_account_paid_fen
        out["self_pay_fen"] += r.self_pay_fen
        out["refunds"] += sum(1 for e in r.refunds if not e.reversal)
        out["refunded_fen"] += sum(e.amount_fen for e in r.refunds)
        out["fund_refunded_fen"] += sum(e.fund_fen for e in r.refunds)
        out["personal_account_refunded_fen"] += sum(e.personal_account_fen for e in r.refunds)
        out["self_pay_refunded_fen"] += sum(e.self_pay_fen for e in r.refunds)
        out["reversals"] += 1 if r.HasField("reversed_at") else 0
        out["reversed_fen"] += sum(e.amount_fen for e in r.refunds if e.reversal)
        out["net_fen"] += r.total_fen - sum(e.amount_fen for e in r.refunds)
    return out


def totals(message: Any) -> dict[str, int]:
    return {name: getattr(message, name) for name in sums([])}


def test_a_day_of_two_tills_adds_up_to_the_fen(served: InProcessServer) -> None:
    world = World.seed(served.target, cards=2, balance_fen=3_000)
    with world.hospital() as pos:
        made = []
        for n in range(7):
            made.append(pos.settle(BASKETS[n % 3], idempotency_key=f"D-{n}", token=world.mint(n % 2),
                                   terminal_id=f"till-{n % 2}", operator_id="op-1"))
        pos.refund(made[0].settlement_id, idempotency_key="D-0-r", lines=[("XA01", 1)], terminal_id="till-1")
        pos.refund(made[1].settlement_id, idempotency_key="D-1-r", amount_fen=1001)
        pos.reverse_settlement("D-2", terminal_id="till-0")
        pos.reverse_settlement("D-never")
        listed = list(pos.list_settlements(page_size=2))
        assert sorted(r.idempotency_key for r in listed) == [f"D-{n}" for n in range(7)]
        assert [(r.settled_at.seconds, r.settlement_id) for r in listed] == sorted(
            (r.settled_at.seconds, r.settlement_id) for r in listed)
        statement = pos.daily_totals(today())
        assert statement.day == today() and statement.until.seconds - statement.since.seconds == 86_400
        assert totals(statement.total) == sums(listed)
        assert statement.total.reversals == 1 and statement.total.refunds == 2
        assert [t.terminal_id for t in statement.terminals] == ["till-0", "till-1"]
        for till in statement.terminals:
            own = list(pos.list_settlements(terminal_id=till.terminal_id))
            assert own and all(r.terminal_id == till.terminal_id for r in own)
            assert totals(till) == sums(own)
        total = statement.total
        assert total.fund_fen + total.personal_account_fen + total.self_pay_fen == total.total_fen
        assert total.net_fund_fen + total.net_personal_account_fen + total.net_self_pay_fen == total.net_fen
        # another day is empty; the other merchant of the world has nothing
        since, _ = day_range(today())
        yesterday = datetime.datetime.fromtimestamp(since - 1, SHANGHAI).date().isoformat()
        assert totals(pos.daily_totals(yesterday).total) == sums([])
    with world.pharmacy() as other:
        assert list(other.list_settlements()) == [] and other.daily_totals(today()).total.settlements == 0


def test_pages_stay_stable_while_settlements_arrive(served: InProcessServer) -> None:
    world = World.seed(served.target, cards=1, balance_fen=0)
    with world.pharmacy() as pos:
        for n in range(5):
            pos.settle(BASKETS[2], idempotency_key=f"P-{n}", token=world.mint(0))
        listing = pos.list_settlements(page_size=2)
        seen = [next(listing).idempotency_key for _ in range(3)]
        for n in range(5, 8):  # arrive while the listing is on its second page
            pos.settle(BASKETS[2], idempotency_key=f"P-{n}", token=world.mint(0))
        seen += [r.idempotency_key for r in listing]
        assert len(seen) == len(set(seen)) and {f"P-{n}" for n in range(5)} <= set(seen)
        window = list(pos.list_settlements(since=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)))
        assert window == []


def test_listing_and_statement_requests_are_checked(served: InProcessServer) -> None:
    world = World.seed(served.target, cards=1)
    with world.pharmacy() as pos:
        pos.settle(BASKETS[2], idempotency_key="Q-1", token=world.mint(0))
        pos.settle(BASKETS[2], idempotency_key="Q-2", token=world.mint(0))
        stub = pos._settlement  # the raw calls, to send what the SDK would not
        meta = pos._metadata
        first = stub.ListSettlements(settlement_pb2.ListSettlementsRequest(page_size=1), metadata=meta)
        assert first.next_page_token
        bad = [
            settlement_pb2.ListSettlementsRequest(page_size=1001),
            settlement_pb2.ListSettlementsRequest(page_size=-1),
            settlement_pb2.ListSettlementsRequest(page_token="not-a-token"),
            settlement_pb2.ListSettlementsRequest(page_token=first.next_page_token, terminal_id="till-9"),
            settlement_pb2.ListSettlementsRequest(terminal_id="till 9"),
        ]
        reasons = []
        for request in bad:
            with pytest.raises(InvalidArgument) as refused:
                pos._call(stub.ListSettlements, request)
            reasons.append(refused.value.reason)
        assert reasons == ["INVALID_PAGE_SIZE", "INVALID_PAGE_SIZE", "INVALID_PAGE_TOKEN", "INVALID_PAGE_TOKEN",
                           "INVALID_TERMINAL_ID"]
        for day in ("", "2026-13-01", "2026-1-01", "1999-12-31", "20261203", "2026-12-03T00:00"):
            with pytest.raises(InvalidArgument) as refused:
                pos.daily_totals(day)
            assert refused.value.reason == "INVALID_DAY"
        with pytest.raises(PermissionDenied):
            pos._call(stub.DailyTotals, settlement_pb2.DailyTotalsRequest(merchant_id=world.hospital_id, day=today()))


def test_a_statement_day_is_the_calendar_day_in_shanghai() -> None:
    since, until = day_range("2026-12-03")
    assert datetime.datetime.fromtimestamp(since, datetime.UTC).isoformat() == "2026-12-02T16:00:00+00:00"
    assert until - since == 86_400


def test_the_cli_exports_a_day_as_csv_that_adds_up(served: InProcessServer, tmp_path: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    world = World.seed(served.target, cards=1)
    with world.hospital() as pos:
        for n in range(3):
            pos.settle(BASKETS[n], idempotency_key=f"C-{n}", token=world.mint(0), terminal_id=f"till-{n % 2}")
        pos.reverse_settlement("C-1")
    common = ["--merchant", world.hospital_id, "--day", today(), "--target", served.target]
    out = tmp_path / "day.csv"
    assert main(["statement", *common, "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert sorted(r["idempotency_key"] for r in rows) == ["C-0", "C-1", "C-2"]
    assert main(["statement", *common, "--totals"]) == 0
    totals_rows = {r["terminal_id"]: r for r in csv.DictReader(capsys.readouterr().out.splitlines())}
    assert set(totals_rows) == {"till-0", "till-1", "*"}
    for column in ("total_fen", "fund_fen", "personal_account_fen", "self_pay_fen", "refunded_fen", "reversed_fen",
                   "net_fen"):
        assert int(totals_rows["*"][column]) == sum(int(r[column]) for r in rows)
    assert main(["statement", "--merchant", world.hospital_id, "--day", "2026-02-30", "--target",
                 served.target]) == 1
    assert capsys.readouterr().err.strip().endswith("day must be a date written YYYY-MM-DD")


def test_the_operator_sees_the_day_per_merchant_and_per_fund(served: InProcessServer) -> None:
    world = World.seed(served.target, cards=2, balance_fen=5_000)
    with world.admin() as admin:
        admin.upsert_merchant(world.pharmacy_id, kind=MERCHANT_KIND_PHARMACY, region="330100")  # another fund
        with world.hospital() as hospital, world.pharmacy() as pharmacy:
            hospital.settle(BASKETS[0], idempotency_key="O-1", token=world.mint(0))
            hospital.settle(BASKETS[1], idempotency_key="O-2", token=world.mint(1))
            pharmacy.settle(BASKETS[2], idempotency_key="O-3", token=world.mint(0))
            pharmacy.reverse_settlement("O-3")
            own = {world.hospital_id: hospital.daily_totals(today()).total,
                   world.pharmacy_id: pharmacy.daily_totals(today()).total}
        day = admin.settlement_day_totals(today())
        with pytest.raises(InvalidArgument):
            admin.settlement_day_totals("2026-02-30")
    mine = {m.merchant_id: m for m in day.merchants if m.merchant_id in own}
    assert {k: totals(m.totals) for k, m in mine.items()} == {k: totals(t) for k, t in own.items()}
    assert mine[world.pharmacy_id].region == "330100" and mine[world.hospital_id].region == "330200"
    funds = {f.region: totals(f.totals) for f in day.funds}
    for region in ("330100", "330200"):  # the merchants of a region add up to its fund's line
        assert funds[region] == {name: sum(totals(m.totals)[name] for m in day.merchants if m.region == region)
                                 for name in funds[region]}
    assert day.total.total_fen == sum(m.totals.total_fen for m in day.merchants)


def test_the_operator_exports_the_day_as_csv(served: InProcessServer, capsys: pytest.CaptureFixture[str]) -> None:
    world = World.seed(served.target, cards=1)
    with world.hospital() as pos:
        pos.settle(BASKETS[0], idempotency_key="X-1", token=world.mint(0), terminal_id="till-1")
    assert main(["day-totals", "--day", today(), "--target", served.target]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    mine = [r for r in rows if r["merchant_id"] == world.hospital_id]
    assert len(mine) == 1 and mine[0]["group"] == "merchant" and mine[0]["region"] == "330200"
    [everything] = [r for r in rows if r["group"] == "all"]
    funds = [r for r in rows if r["group"] == "fund"]
    merchants = [r for r in rows if r["group"] == "merchant"]
    for column in ("total_fen", "net_fen", "fund_fen"):
        assert int(everything[column]) == sum(int(r[column]) for r in funds) == sum(int(r[column]) for r in merchants)


def test_a_time_range_with_fractions_of_a_second_cuts_at_whole_seconds(served: InProcessServer) -> None:
    world = World.seed(served.target, cards=1)
    with world.pharmacy() as pos:
        record = pos.settle(BASKETS[2], idempotency_key="T-1", token=world.mint(0))
        at = datetime.datetime.fromtimestamp(record.settled_at.seconds, datetime.UTC)
        half = datetime.timedelta(milliseconds=500)
        assert [r.settlement_id for r in pos.list_settlements(since=at - half, until=at + half)] == [
            record.settlement_id]
        assert list(pos.list_settlements(since=at + half)) == []
        assert list(pos.list_settlements(until=at)) == []
