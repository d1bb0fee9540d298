"""Hospital visits (挂号, 就诊, 结算, 取药) through the SDK, on SQLite and PostgreSQL: a registration scan opens
a visit bound to the holder and the hospital; fee items are added over the day; settling needs a fresh
PIN-level credential of the same holder and is priced as Settle prices; 退号 closes it with nothing
moved; a visit left open expires; another merchant's visit is NOT_FOUND."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from ecard import (
    AlreadyExists,
    Assurance,
    AsyncPharmacyClient,
    DrugClass,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PharmacyClient,
    Purpose,
    SettlementStatus,
    line_item,
)
from ecard.testing import World
from ecard.v1 import settlement_pb2
from ecard_server.config import Settings
from ecard_server.core.records import LineItem
from tests.helpers.inprocess import InProcessServer

A, B, C = DrugClass.A, DrugClass.B, DrugClass.C
REGISTRATION_FEE = [line_item("REG01", "registration, internal medicine", A, 500)]
EXAMINATION = [line_item("EX-CBC", "complete blood count", B, 2500), line_item("EX-XR", "chest X-ray", C, 8000)]
PRESCRIPTION = [line_item("XA01", "amoxicillin 0.25 g x 24", A, 1280, 2)]
START = 100_000
OPEN = settlement_pb2.VISIT_STATUS_OPEN


# One server per backend for the module, not one per test: every test seeds a world of its own (its own
# hospital, pharmacy and cards, so its own visits), and what is tested is visits, not a fresh server.
@pytest.fixture(scope="module")
def served(module_db_url: str) -> Iterator[InProcessServer]:
    with InProcessServer(db=module_db_url, settings=Settings(visit_ttl_s=3)) as running:
        yield running


@pytest.fixture
def world(served: InProcessServer) -> World:
    return World.seed(served.target, cards=3, balance_fen=START)


def balance(world: World, card: int) -> int:
    with world.admin() as admin:
        return admin.get_ecard(world.ecard_ids[card]).personal_account_balance_fen


def registered(desk: PharmacyClient, world: World, card: int, key: str) -> settlement_pb2.Visit:
    answer = desk.verify(world.mint(card), purpose=Purpose.REGISTRATION)
    return desk.open_visit(idempotency_key=key, verification_id=answer.verification_id, terminal_id="desk-1",
                           department="internal medicine")


def reason(call: object) -> str:
    with pytest.raises((FailedPrecondition, NotFound, InvalidArgument, AlreadyExists)) as refused:
        call()  # type: ignore[operator]
    return refused.value.reason


def test_a_visit_over_the_day_settles_as_a_settle_of_its_items_would(world: World) -> None:
    with world.hospital() as desk:
        visit = registered(desk, world, 0, "REG-1")
        assert visit.status == OPEN and visit.ecard_id == world.ecard_ids[0] and not visit.items
        assert visit.expires_at.seconds - visit.opened_at.seconds == 3
        desk.add_visit_items(visit.visit_id, REGISTRATION_FEE, idempotency_key="add-1")
        desk.add_visit_items(visit.visit_id, EXAMINATION, idempotency_key="add-2")
        again = desk.add_visit_items(visit.visit_id, EXAMINATION, idempotency_key="add-2")  # a retry adds nothing
        assert [i.code for i in again.items] == ["REG01", "EX-CBC", "EX-XR"]
        full = desk.add_visit_items(visit.visit_id, PRESCRIPTION, idempotency_key="add-3")
        assert full.total_fen == 500 + 2500 + 8000 + 2560
        record = desk.settle_visit(visit.visit_id, idempotency_key="PAY-1", token=world.mint(0), terminal_id="pay-2")
        # the same basket settled directly by another holder with the same balance: the same split
        direct = desk.settle(REGISTRATION_FEE + EXAMINATION + PRESCRIPTION, idempotency_key="DIRECT",
                             token=world.mint(1))
        assert (record.total_fen, record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen) == (
            direct.total_fen, direct.fund_paid_fen, direct.personal_account_paid_fen, direct.self_pay_fen)
        assert record.terminal_id == "pay-2" and balance(world, 0) == START - record.personal_account_paid_fen
        settled = desk.get_visit(visit.visit_id)
        assert settled.status == settlement_pb2.VISIT_STATUS_SETTLED
        assert settled.settlement_id == record.settlement_id and settled.HasField("closed_at")
        # a retry of the payment answers the same; nothing else can happen to a settled visit
        assert desk.settle_visit(visit.visit_id, idempotency_key="PAY-1", token=world.mint(0)) == record
        assert reason(lambda: desk.settle_visit(visit.visit_id, idempotency_key="PAY-2", token=world.mint(0))) == (
            "VISIT_SETTLED")
        assert reason(lambda: desk.add_visit_items(visit.visit_id, PRESCRIPTION, idempotency_key="add-4")) == (
            "VISIT_SETTLED")
        assert reason(lambda: desk.cancel_visit(visit.visit_id)) == "VISIT_SETTLED"
        assert balance(world, 0) == START - record.personal_account_paid_fen
    with world.admin() as admin:
        kinds = [e.kind for e in admin.audit_events(subject=world.ecard_ids[0]) if e.kind.startswith("VISIT")]
    assert kinds == ["VISIT_OPENED", "VISIT_ITEMS", "VISIT_ITEMS", "VISIT_ITEMS", "VISIT_SETTLED"]


def test_settling_needs_a_fresh_pin_credential_of_the_same_holder(world: World) -> None:
    with world.hospital() as desk:
        visit = registered(desk, world, 0, "REG-2")
        desk.add_visit_items(visit.visit_id, EXAMINATION, idempotency_key="a")
        assert reason(lambda: desk.settle_visit(visit.visit_id, idempotency_key="P", token=world.mint(1))) == (
            "VISIT_HOLDER_MISMATCH")
        assert reason(lambda: desk.settle_visit(visit.visit_id, idempotency_key="P2",
                                                token=world.mint(0, assurance=Assurance.NONE))) == "ASSURANCE_TOO_LOW"
        registration = desk.verify(world.mint(0), purpose=Purpose.REGISTRATION)
        assert reason(lambda: desk.settle_visit(visit.visit_id, idempotency_key="P3",
                                                verification_id=registration.verification_id)) == (
            "VERIFICATION_NOT_FOR_SETTLEMENT")
        assert (balance(world, 0), balance(world, 1)) == (START, START)
        paying = desk.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT, min_assurance=Assurance.PIN)
        record = desk.settle_visit(visit.visit_id, idempotency_key="P4", verification_id=paying.verification_id)
        assert record.status == SettlementStatus.SETTLED and record.total_fen == 10_500


def test_a_cancelled_visit_moves_nothing_and_stays_closed(world: World) -> None:
    with world.hospital() as desk:
        visit = registered(desk, world, 0, "REG-3")
        desk.add_visit_items(visit.visit_id, REGISTRATION_FEE, idempotency_key="a")
        cancelled = desk.cancel_visit(visit.visit_id)
        assert cancelled.status == settlement_pb2.VISIT_STATUS_CANCELLED and cancelled.HasField("closed_at")
        assert desk.cancel_visit(visit.visit_id) == cancelled
        assert reason(lambda: desk.settle_visit(visit.visit_id, idempotency_key="P", token=world.mint(0))) == (
            "VISIT_CANCELLED")
        assert reason(lambda: desk.add_visit_items(visit.visit_id, EXAMINATION, idempotency_key="b")) == (
            "VISIT_CANCELLED")
    assert balance(world, 0) == START


def test_a_visit_left_open_expires_with_nothing_moved(world: World) -> None:
    with world.hospital() as desk:
        visit = registered(desk, world, 0, "REG-4")
        desk.add_visit_items(visit.visit_id, REGISTRATION_FEE, idempotency_key="a")
        time.sleep(3.2)
        assert desk.get_visit(visit.visit_id).status == settlement_pb2.VISIT_STATUS_EXPIRED
        for call in (lambda: desk.add_visit_items(visit.visit_id, EXAMINATION, idempotency_key="b"),
                     lambda: desk.settle_visit(visit.visit_id, idempotency_key="P", token=world.mint(0)),
                     lambda: desk.cancel_visit(visit.visit_id)):
            assert reason(call) == "VISIT_EXPIRED"
    assert balance(world, 0) == START


def test_visits_are_the_hospitals_own_and_each_registration_opens_one(world: World) -> None:
    with world.hospital() as desk, world.pharmacy() as pharmacy:
        visit = registered(desk, world, 0, "REG-5")
        for call in (lambda: pharmacy.get_visit(visit.visit_id),
                     lambda: pharmacy.add_visit_items(visit.visit_id, EXAMINATION, idempotency_key="x"),
                     lambda: pharmacy.settle_visit(visit.visit_id, idempotency_key="x", token=world.mint(0)),
                     lambda: pharmacy.cancel_visit(visit.visit_id),
                     lambda: desk.get_visit("V" + "A" * 16)):
            assert reason(call) == "VISIT_UNKNOWN"
        at_pharmacy = pharmacy.verify(world.mint(1), purpose=Purpose.REGISTRATION)
        assert reason(lambda: pharmacy.open_visit(idempotency_key="R",
                                                  verification_id=at_pharmacy.verification_id)) == (
            "NOT_A_HOSPITAL")
        registration = desk.verify(world.mint(1), purpose=Purpose.REGISTRATION)
        first = desk.open_visit(idempotency_key="REG-6", verification_id=registration.verification_id)
        assert desk.open_visit(idempotency_key="REG-6", verification_id=registration.verification_id) == first
        assert reason(lambda: desk.open_visit(idempotency_key="REG-7",
                                              verification_id=registration.verification_id)) == "VERIFICATION_USED"
        assert reason(lambda: desk.open_visit(idempotency_key="REG-6", token=world.mint(1))) == (
            "IDEMPOTENCY_KEY_REUSED")
        paying = desk.verify(world.mint(2), purpose=Purpose.MEDICAL_SETTLEMENT, min_assurance=Assurance.PIN)
        assert reason(lambda: desk.open_visit(idempotency_key="REG-8", verification_id=paying.verification_id)) == (
            "VERIFICATION_NOT_FOR_REGISTRATION")
        by_token = desk.open_visit(idempotency_key="REG-9", token=world.mint(2))
        assert by_token.ecard_id == world.ecard_ids[2]


def test_visit_requests_are_checked(world: World) -> None:
    with world.hospital() as desk:
        visit = registered(desk, world, 0, "REG-10")
        stub, meta = desk._settlement, desk._metadata
        bad = [
            (stub.OpenVisit, settlement_pb2.OpenVisitRequest(token=world.mint(0)), "MISSING_IDEMPOTENCY_KEY"),
            (stub.OpenVisit, settlement_pb2.OpenVisitRequest(idempotency_key="k"), "MISSING_CREDENTIAL"),
            (stub.OpenVisit, settlement_pb2.OpenVisitRequest(idempotency_key="k", token=world.mint(0),
                                                             department="x" * 65), "INVALID_DEPARTMENT"),
            (stub.AddVisitItems, settlement_pb2.AddVisitItemsRequest(visit_id=visit.visit_id, idempotency_key="k"),
             "EMPTY_BASKET"),
            (stub.AddVisitItems, settlement_pb2.AddVisitItemsRequest(
                visit_id=visit.visit_id, idempotency_key="k",
                items=[line_item("X", "x", A, -1)]), "INVALID_PRICE"),
            (stub.AddVisitItems, settlement_pb2.AddVisitItemsRequest(items=EXAMINATION, idempotency_key="k"),
             "MISSING_VISIT_ID"),
            (stub.CancelVisit, settlement_pb2.VisitRef(), "MISSING_VISIT_ID"),
            (stub.SettleVisit, settlement_pb2.SettleVisitRequest(visit_id=visit.visit_id, idempotency_key="k"),
             "MISSING_CREDENTIAL"),
            (stub.SettleVisit, settlement_pb2.SettleVisitRequest(visit_id=visit.visit_id, idempotency_key="k",
                                                                 token=world.mint(0)), "EMPTY_BASKET"),
        ]
        got = [reason(lambda call=call, request=request: desk._call(call, request)) for call, request, _ in bad]
        assert got == [expected for _, _, expected in bad]
        assert meta  # the raw calls carried the hospital's principal
        assert reason(lambda: desk.get_visit("V" * 65)) == "VISIT_UNKNOWN"


def test_the_asyncio_client_runs_a_visit_too(world: World) -> None:
    async def visit() -> tuple[settlement_pb2.Visit, settlement_pb2.SettlementRecord, settlement_pb2.Visit]:
        async with AsyncPharmacyClient(world.target, merchant_id=world.hospital_id) as desk:
            opened = await desk.open_visit(idempotency_key="AREG-1", token=world.mint(0))
            await desk.add_visit_items(opened.visit_id, EXAMINATION, idempotency_key="a")
            paid = await desk.settle_visit(opened.visit_id, idempotency_key="APAY-1", token=world.mint(0))
            other = await desk.open_visit(idempotency_key="AREG-2", token=world.mint(0))
            return await desk.get_visit(opened.visit_id), paid, await desk.cancel_visit(other.visit_id)

    settled, paid, cancelled = asyncio.run(visit())
    assert settled.settlement_id == paid.settlement_id and paid.total_fen == 10_500
    assert cancelled.status == settlement_pb2.VISIT_STATUS_CANCELLED


class _AddsAnItemFirst:
    """The ledger, with one AddVisitItems (through the real service) slipped in just before the next
    settlement's transaction: the race of a doctor's order with the payment window, made certain."""

    def __init__(self, ledger: object, add: object) -> None:
        self._ledger, self._add = ledger, add

    def settle(self, *args: object, **kwargs: object) -> object:
        add, self._add = self._add, None
        if add is not None:
            add()  # type: ignore[operator]
        return self._ledger.settle(*args, **kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._ledger, name)


def test_items_added_while_paying_refuse_the_settle_and_the_same_code_pays_again(
    served: InProcessServer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = served.deployment
    assert deployment is not None
    with world.hospital() as desk:
        visit = registered(desk, world, 0, "REG-11")
        desk.add_visit_items(visit.visit_id, REGISTRATION_FEE, idempotency_key="a")
        late = lambda: deployment.visits.add_items(world.hospital_id, visit.visit_id, "late", (  # noqa: E731
            LineItem("XA01", "amoxicillin", DrugClass.A, 1280, 1),))
        monkeypatch.setattr(deployment.settlements, "_ledger",
                            _AddsAnItemFirst(deployment.settlements._ledger, late))
        token = world.mint(0)
        assert reason(lambda: desk.settle_visit(visit.visit_id, idempotency_key="PAY", token=token)) == (
            "VISIT_CHANGED")
        assert balance(world, 0) == START
        # the payment window tries again with the same code: it was given back, and the visit now holds both
        record = desk.settle_visit(visit.visit_id, idempotency_key="PAY", token=token)
        assert record.total_fen == 500 + 1280
