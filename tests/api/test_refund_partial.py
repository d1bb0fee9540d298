"""Partial refunds over real `ecard serve` processes (SQLite, then PostgreSQL), through the pharmacy SDK.

What a merchant and a holder rely on: a refund of chosen lines or of an amount gives back each share
(fund, personal account, self-pay) in proportion, the refunds of a settlement add up to exactly what
it paid and never more, a retried refund moves money once, and concurrent refunds cannot over-refund.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from ecard import (
    AlreadyExists,
    AsyncPharmacyClient,
    DrugClass,
    EcardError,
    FailedPrecondition,
    InvalidArgument,
    PharmacyClient,
    SettlementStatus,
    from_grpc_error,
    line_item,
    refund_line,
)
from ecard.testing import World
from ecard.v1 import settlement_pb2, settlement_pb2_grpc
from ecard.v1 import types_pb2 as t
from ecard_server.core.records import RefundAsk
from ecard_server.core.rules.settlement import refund_hash
from ecard_server.storage import open_store, sql
from ecard_server.storage.migrations import MIGRATIONS
from tests.helpers.inprocess import InProcessServer

A, B, C = DrugClass.A, DrugClass.B, DrugClass.C
# At a hospital (fund 50 % of the covered amount): XA01 2 x 1280 (covered 2560, fund 1280), XB07 1550
# (covered 1395, fund 697.5 -> 698), XC11 900 (not covered). Total 5010 = fund 1978 + account 1977
# (covered 3955 - fund) + self-pay 1055.
BASKET = [
    line_item("XA01", "amoxicillin 0.25 g x 24", A, 1280, 2),
    line_item("XB07", "ibuprofen 0.3 g x 20", B, 1550),
    line_item("XC11", "vitamin C 100 mg x 100", C, 900),
]
START = 100_000


# One server per backend for the module, not one per test: every test seeds a world of its own (its own
# merchants and card, so its own settlements and refunds), and what is tested is refunds, not a fresh
# server. The upgrade test makes its own old database (`empty_db_url`).
@pytest.fixture(scope="module")
def served(module_db_url: str, request: pytest.FixtureRequest) -> Iterator[InProcessServer]:
    """What tests/api/conftest.py's `served` is (replicas may join it), for the module."""
    redis = None if module_db_url.startswith("sqlite") else str(request.getfixturevalue("redis_module_url"))
    with InProcessServer.replicable(module_db_url, redis) as running:
        yield running


@pytest.fixture
def world(served: InProcessServer) -> World:
    return World.seed(served.target, cards=1, balance_fen=START)


def settle(pos: PharmacyClient, world: World, key: str, items: Any = None) -> settlement_pb2.SettlementRecord:
    return pos.settle(BASKET if items is None else items, idempotency_key=key, token=world.mint(0))


def balance(world: World) -> int:
    with world.admin() as admin:
        return admin.get_ecard(world.ecard_ids[0]).personal_account_balance_fen


def shares(entry: Any) -> tuple[int, int, int]:
    return (entry.fund_fen, entry.personal_account_fen, entry.self_pay_fen)


def refunded(record: settlement_pb2.SettlementRecord) -> tuple[int, int, int]:
    return (record.fund_refunded_fen, record.personal_account_refunded_fen, record.self_pay_refunded_fen)


def paid(record: settlement_pb2.SettlementRecord) -> tuple[int, int, int]:
    return (record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen)


def entry(record: settlement_pb2.SettlementRecord, key: str) -> settlement_pb2.RefundEntry:
    (found,) = [r for r in record.refunds if r.idempotency_key == key]
    return found


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """work(0..count-1) on `count` threads released at once; results, or the EcardError raised."""
    gate = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(n: int) -> None:
        gate.wait()
        try:
            results[n] = work(n)
        except EcardError as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_lines_then_an_amount_then_the_rest(world: World, hospital_client: Any) -> None:
    pos = hospital_client
    record = settle(pos, world, "rx-1")
    assert paid(record) == (1978, 1977, 1055)
    assert record.personal_account_balance_fen == START - 1977
    # Which share paid which line: the fund's 1978 over covered 2560 and 1395 (floor(1978 * 2560 /
    # 3955) = 1280, then 698), the account's 1977 over what the fund left (1280, 697), the rest self-pay.
    assert [(ln.code, ln.fund_fen, ln.personal_account_fen, ln.self_pay_fen) for ln in record.lines] == [
        ("XA01", 1280, 1280, 0), ("XB07", 698, 697, 155), ("XC11", 0, 0, 900)]

    # One box of XA01 (half of the line): half of that line's own shares.
    one_box = pos.refund(record.settlement_id, idempotency_key="rf-1", reason="one box back",
                         lines=[("XA01", 1)])
    assert one_box.status == SettlementStatus.PARTIALLY_REFUNDED
    first = entry(one_box, "rf-1")
    assert (first.amount_fen, shares(first)) == (1280, (640, 640, 0))
    assert [(line.code, line.quantity) for line in first.lines] == [("XA01", 1)]
    assert first.reason == "one box back"
    assert first.personal_account_balance_fen == START - 1977 + 640 == balance(world)
    assert one_box.refunded_fen == 1280 and refunded(one_box) == (640, 640, 0)
    assert one_box.HasField("refunded_at")
    assert paid(one_box) == paid(record) and one_box.total_fen == 5010  # what was paid stays as it was
    xa01 = one_box.lines[0]
    assert (xa01.refunded_quantity, xa01.fund_refunded_fen, xa01.personal_account_refunded_fen) == (1, 640, 640)

    # 1000 fen over what is left of the lines (1280, 1550, 900): 343, 415, 242, each over its line's shares.
    some = pos.refund(record.settlement_id, idempotency_key="rf-2", amount_fen=1000)
    assert shares(entry(some, "rf-2")) == (171 + 186, 172 + 187, 42 + 242)
    assert list(entry(some, "rf-2").lines) == []
    assert some.status == SettlementStatus.PARTIALLY_REFUNDED

    # full=True gives back exactly what is left of each share.
    rest = pos.refund(record.settlement_id, idempotency_key="rf-3", full=True)
    assert shares(entry(rest, "rf-3")) == (1978 - 640 - 357, 1977 - 640 - 359, 1055 - 284)
    assert rest.status == SettlementStatus.REFUNDED
    assert refunded(rest) == paid(rest) and rest.refunded_fen == rest.total_fen
    assert [r.idempotency_key for r in rest.refunds] == ["rf-1", "rf-2", "rf-3"]
    assert all((ln.fund_refunded_fen, ln.personal_account_refunded_fen, ln.self_pay_refunded_fen)
               == (ln.fund_fen, ln.personal_account_fen, ln.self_pay_fen) for ln in rest.lines)
    assert pos.get_settlement(record.settlement_id) == rest
    assert balance(world) == START

    with pytest.raises(FailedPrecondition) as again:
        pos.refund(record.settlement_id, idempotency_key="rf-4", amount_fen=1)
    assert again.value.reason == "ALREADY_REFUNDED"


def test_a_cash_line_comes_back_in_cash(world: World, pos_client: Any) -> None:
    """Issue 16: class A 25.60 paid by the account, class C 9.00 in cash, at a pharmacy. Refunding
    the class C line gave 6.65 to the account and 2.35 in cash; refunding the A line turned account
    money into cash. Each line now gives back its own shares."""
    pos = pos_client
    basket = [line_item("XA01", "amoxicillin", A, 1280, 2), line_item("XC11", "vitamin C", C, 900)]
    record = settle(pos, world, "rx-cash", basket)
    assert paid(record) == (0, 2560, 900)
    cash = pos.refund(record.settlement_id, idempotency_key="rf-cash", lines=[("XC11", 1)])
    assert shares(entry(cash, "rf-cash")) == (0, 0, 900)
    box = pos.refund(record.settlement_id, idempotency_key="rf-box", lines=[("XA01", 1)])
    assert shares(entry(box, "rf-box")) == (0, 1280, 0)
    assert balance(world) == START - 2560 + 1280


def test_a_retried_refund_moves_money_once(world: World, hospital_client: Any) -> None:
    pos = hospital_client
    record = settle(pos, world, "rx-idem")
    first = pos.refund(record.settlement_id, idempotency_key="rf-idem", lines=[refund_line("XB07")])
    after_first = balance(world)
    assert pos.refund(record.settlement_id, idempotency_key="rf-idem", lines=[("XB07", 1)]) == first
    assert balance(world) == after_first
    # A later refund does not change what the first one's key answers about that refund.
    pos.refund(record.settlement_id, idempotency_key="rf-later", amount_fen=10)
    replay = pos.refund(record.settlement_id, idempotency_key="rf-idem", lines=[("XB07", 1)])
    assert entry(replay, "rf-idem") == entry(first, "rf-idem")
    assert balance(world) == after_first + entry(replay, "rf-later").personal_account_fen
    for other in ({"lines": [("XA01", 1)]}, {"amount_fen": 1550}, {"full": True}):
        with pytest.raises(AlreadyExists) as reused:
            pos.refund(record.settlement_id, idempotency_key="rf-idem", **other)
        assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_the_asyncio_client_refunds_in_part_too(world: World) -> None:
    async def scenario() -> tuple[settlement_pb2.SettlementRecord, settlement_pb2.SettlementRecord]:
        async with AsyncPharmacyClient(world.target, merchant_id=world.hospital_id) as pos:
            record = await pos.settle(BASKET, idempotency_key="rx-async", token=world.mint(0))
            part = await pos.refund(record.settlement_id, idempotency_key="rf-async", lines=[("XC11", 1)])
            return part, await pos.get_settlement(record.settlement_id)

    part, fetched = asyncio.run(scenario())
    assert part == fetched and part.status == SettlementStatus.PARTIALLY_REFUNDED
    # The class C line was paid in cash: it comes back in cash.
    assert shares(entry(part, "rf-async")) == (0, 0, 900)


def test_never_more_than_was_paid(world: World, hospital_client: Any) -> None:
    pos = hospital_client
    record = settle(pos, world, "rx-over")
    before = balance(world)
    cases = [
        ({"lines": [("XA01", 3)]}, FailedPrecondition, "REFUND_EXCEEDS_PAID"),  # only 2 were sold
        ({"amount_fen": 5011}, FailedPrecondition, "REFUND_EXCEEDS_PAID"),
        ({"lines": [("NOPE", 1)]}, InvalidArgument, "ITEM_NOT_IN_SETTLEMENT"),
        ({"lines": [("XA01", 0)]}, InvalidArgument, "INVALID_QUANTITY"),
        ({"amount_fen": -5}, InvalidArgument, "NEGATIVE_AMOUNT"),
    ]
    for n, (ask, error, reason) in enumerate(cases):
        with pytest.raises(error) as bad:
            pos.refund(record.settlement_id, idempotency_key=f"bad-{n}", **ask)
        assert bad.value.reason == reason, ask
    pos.refund(record.settlement_id, idempotency_key="two-boxes", lines=[("XA01", 2)])
    with pytest.raises(FailedPrecondition) as gone:
        pos.refund(record.settlement_id, idempotency_key="a-third-box", lines=[("XA01", 1)])
    assert gone.value.reason == "REFUND_EXCEEDS_PAID"
    with pytest.raises(FailedPrecondition):  # 2560 of 5010 are back: 2450 are left
        pos.refund(record.settlement_id, idempotency_key="too-much", amount_fen=2452)
    now = pos.get_settlement(record.settlement_id)
    assert now.refunded_fen == 2560 and [r.idempotency_key for r in now.refunds] == ["two-boxes"]
    assert balance(world) == before + now.personal_account_refunded_fen


def raw_refund(served: InProcessServer, world: World, request: settlement_pb2.RefundRequest) -> EcardError:
    """A Refund sent as it stands (no SDK checks), as an older or a careless client sends it."""
    with grpc.insecure_channel(served.target) as channel:
        stub = settlement_pb2_grpc.SettlementStub(channel)
        with pytest.raises(grpc.RpcError) as raw:
            stub.Refund(request, metadata=[("x-ecard-principal", f"merchant:{world.hospital_id}")], timeout=10)
    return from_grpc_error(raw.value)


def test_lines_and_amount_together_is_refused_by_the_server(world: World, served: InProcessServer) -> None:
    with world.hospital() as pos:
        record = settle(pos, world, "rx-both")
    request = settlement_pb2.RefundRequest(settlement_id=record.settlement_id, idempotency_key="both",
                                           lines=[settlement_pb2.RefundLine(code="XA01", quantity=1)], amount_fen=5)
    error = raw_refund(served, world, request)
    assert isinstance(error, InvalidArgument) and error.reason == "REFUND_LINES_AND_AMOUNT"
    with world.hospital() as pos:
        assert pos.get_settlement(record.settlement_id).refunded_fen == 0


def test_an_empty_selection_never_refunds_everything(world: World, served: InProcessServer) -> None:
    """Issue 16: amount_fen=0 or lines=[] (proto3 cannot tell them from unset) refunded the whole
    settlement. Now the server refuses a request naming none of full, lines and amount (what an older
    client sends for "everything"), and the SDK refuses zero and empty before sending anything."""
    with world.hospital() as pos:
        record = settle(pos, world, "rx-empty")
        for ask in ({}, {"amount_fen": 0}, {"lines": []}):
            with pytest.raises(InvalidArgument) as sdk:
                pos.refund(record.settlement_id, idempotency_key="empty", **ask)
            assert sdk.value.reason == "REFUND_SELECTION_MISSING", ask
        with pytest.raises(InvalidArgument) as both:
            pos.refund(record.settlement_id, idempotency_key="both", full=True, amount_fen=5)
        assert both.value.reason == "REFUND_SELECTION_AMBIGUOUS"
    for request in (
        settlement_pb2.RefundRequest(settlement_id=record.settlement_id, idempotency_key="old-client"),
        settlement_pb2.RefundRequest(settlement_id=record.settlement_id, idempotency_key="zero", amount_fen=0,
                                     lines=[]),
        settlement_pb2.RefundRequest(settlement_id=record.settlement_id, idempotency_key="full-and-amount",
                                     full=True, amount_fen=5),
    ):
        error = raw_refund(served, world, request)
        assert isinstance(error, InvalidArgument), request
        assert error.reason in ("REFUND_SELECTION_MISSING", "REFUND_SELECTION_AMBIGUOUS")
        assert "full" in error.message
    with world.hospital() as pos:
        assert pos.get_settlement(record.settlement_id).refunded_fen == 0
        assert balance(world) == START - record.personal_account_paid_fen
        whole = pos.refund(record.settlement_id, idempotency_key="asked-for", full=True)
        assert whole.status == SettlementStatus.REFUNDED and balance(world) == START


def test_concurrent_partial_refunds_never_over_refund(world: World) -> None:
    # 2000 fen at a hospital: fund 500, account 500, self-pay 1000; 12 refunds of 250 race for 8 slots.
    basket = [line_item("XA01", "a", A, 1000), line_item("XC11", "c", C, 1000)]
    with world.hospital() as pos:
        record = settle(pos, world, "rx-race", basket)
        assert paid(record) == (500, 500, 1000)
        results = together(12, lambda n: pos.refund(record.settlement_id, idempotency_key=f"race-{n}",
                                                    amount_fen=250))
        done = pos.get_settlement(record.settlement_id)
    won = [r for r in results if isinstance(r, settlement_pb2.SettlementRecord)]
    lost = [r for r in results if not isinstance(r, settlement_pb2.SettlementRecord)]
    assert len(won) == 8, results
    assert all(isinstance(r, FailedPrecondition) and r.reason in ("ALREADY_REFUNDED", "REFUND_EXCEEDS_PAID")
               for r in lost), lost
    assert len(done.refunds) == 8 and all(r.amount_fen == 250 for r in done.refunds)
    assert refunded(done) == (500, 500, 1000) and done.status == SettlementStatus.REFUNDED
    assert balance(world) == START


def test_two_servers_on_one_database_never_over_refund(world: World, served: InProcessServer) -> None:
    """Replicas share the database: refunds racing through two processes still queue on the row lock."""
    basket = [line_item("XA01", "a", A, 1000), line_item("XB07", "b", B, 700, 3)]
    with served.replica() as second, \
            world.hospital() as one, \
            PharmacyClient(second.target, merchant_id=world.hospital_id) as two:
        record = settle(one, world, "rx-two", basket)
        results = together(12, lambda n: (one, two)[n % 2].refund(record.settlement_id,
                                                                  idempotency_key=f"two-{n}", amount_fen=310))
        done = two.get_settlement(record.settlement_id)
    assert sum(isinstance(r, settlement_pb2.SettlementRecord) for r in results) == 3100 // 310 == len(done.refunds)
    assert refunded(done) == paid(done) and done.status == SettlementStatus.REFUNDED
    assert balance(world) == START


def test_concurrent_line_refunds_and_one_key_from_many_threads(world: World) -> None:
    basket = [line_item("XA01", "a", A, 333, 10)]
    with world.hospital() as pos:
        record = settle(pos, world, "rx-lines", basket)
        results = together(14, lambda n: pos.refund(record.settlement_id, idempotency_key=f"box-{n}",
                                                    lines=[("XA01", 1)]))
        assert sum(isinstance(r, settlement_pb2.SettlementRecord) for r in results) == 10
        done = pos.get_settlement(record.settlement_id)
        assert refunded(done) == paid(done) and balance(world) == START

        again = settle(pos, world, "rx-one-key", basket)
        same = together(8, lambda n: pos.refund(again.settlement_id, idempotency_key="one-key", amount_fen=999))
        assert all(isinstance(r, settlement_pb2.SettlementRecord) for r in same), same
        assert {entry(r, "one-key").SerializeToString() for r in same} == {entry(same[0], "one-key")
                                                                           .SerializeToString()}
        final = pos.get_settlement(again.settlement_id)
        assert len(final.refunds) == 1 and final.refunded_fen == 999
        assert balance(world) == START - again.personal_account_paid_fen + final.personal_account_refunded_fen


def test_refunds_made_before_partial_refunds_survive_the_upgrade(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database of schema 3 (one whole refund per settlement) served by this version: its refunds
    stay refunds, their keys still answer, and its other settlements can be refunded in part."""
    items = '[["XA01","a",1,1000,1],["XC11","c",3,1000,1]]'
    monkeypatch.setattr(sql, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 3])
    store = open_store(empty_db_url)
    try:
        assert store.migrate() == 3
        with store.transaction() as cur:
            cur.execute("INSERT INTO merchants VALUES ('old-hospital', 'h', ?, '330200', TRUE, 1)",
                        (int(t.MERCHANT_KIND_HOSPITAL),))
            cur.execute("INSERT INTO cards VALUES ('C1', 'x', ?, '330200', 1, 99000, 'E1', 1, 1)", (b"h" * 32,))
            for sid, status, shares_, nonce, refunded_at in [
                ("S-REFUNDED", 2, (500, 500, 1000), b"n1", 20), ("S-SETTLED", 1, (500, 500, 1000), b"n2", None),
            ]:
                cur.execute(
                    "INSERT INTO settlements (settlement_id, merchant_id, idempotency_key, request_hash, ecard_id, "
                    "card_no, status, total_fen, fund_fen, account_fen, self_pay_fen, balance_after_fen, items, "
                    "verification_nonce, settled_at, refunded_at) "
                    "VALUES (?, 'old-hospital', ?, ?, 'E1', 'C1', ?, 2000, ?, ?, ?, 98500, ?, ?, 10, ?)",
                    (sid, f"rx-{sid}", b"s" * 32, status, *shares_, items, nonce, refunded_at),
                )
            cur.execute(
                "INSERT INTO refunds VALUES ('old-hospital', 'old-refund', ?, 'S-REFUNDED', 'broken', 500, 500, "
                "99000, 20)", (refund_hash("S-REFUNDED", "broken", RefundAsk(full=True)),),
            )
    finally:
        store.close()
    monkeypatch.undo()
    with (
        InProcessServer(db=empty_db_url) as upgraded,
        PharmacyClient(upgraded.target, merchant_id="old-hospital") as pos,
    ):
        old = pos.get_settlement("S-REFUNDED")
        assert old.status == SettlementStatus.REFUNDED and refunded(old) == paid(old) == (500, 500, 1000)
        (entry_,) = old.refunds
        assert (entry_.idempotency_key, entry_.amount_fen, shares(entry_)) == ("old-refund", 2000, (500, 500, 1000))
        assert pos.refund("S-REFUNDED", idempotency_key="old-refund", reason="broken", full=True) == old
        with pytest.raises(FailedPrecondition) as again:
            pos.refund("S-REFUNDED", idempotency_key="new-refund", amount_fen=1)
        assert again.value.reason == "ALREADY_REFUNDED"
        # Its lines keep no shares: it is refunded as it would have been, over the whole settlement.
        part = pos.refund("S-SETTLED", idempotency_key="part", lines=[("XC11", 1)])
        assert shares(entry(part, "part")) == (250, 250, 500)
        assert list(part.lines) == []
        assert part.personal_account_balance_fen == 99000 + 250
