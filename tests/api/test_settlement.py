"""Settlement over a real server in the test process, through the pharmacy SDK.

What a pharmacy and a holder rely on: the shares add up, the account never goes below zero and
always equals its ledger, a retried Settle or Refund moves money once, a credential settles once,
only the settling merchant sees its settlements, bad input writes nothing (that an OK survives kill -9:
tests/process/test_settlement_crash.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecard import (
    ED25519,
    AlreadyExists,
    Assurance,
    DrugClass,
    EcardError,
    FailedPrecondition,
    InvalidArgument,
    MerchantKind,
    NotFound,
    PermissionDenied,
    PharmacyClient,
    Purpose,
    SettlementStatus,
    TokenSigner,
    Unavailable,
    from_grpc_error,
    generate_private_key,
    line_item,
    public_key_pem,
)
from ecard.testing import World
from ecard.v1 import settlement_pb2, settlement_pb2_grpc
from ecard_server.app import Deployment
from ecard_server.config import Settings
from ecard_server.core.admin import EnrollInput
from ecard_server.core.assurance import Statement
from ecard_server.core.principals import CHANNEL, Principal
from ecard_server.core.records import LineItem, SettleInput, SettlementRecord
from ecard_server.core.rules.settlement import Draft
from ecard_server.storage import SqlStore
from ecard_server.storage.ledger import SqlLedger
from ecard_server.storage.memory import LocalChangeBus, MemoryNonceStore
from ecard_server.storage.sqlite import SqliteStore
from tests.helpers.inprocess import InProcessServer
from tests.helpers.ledger import assert_account_equals_ledger, balance, database, ledger_rows, settlement_count

A, B, C = DrugClass.A, DrugClass.B, DrugClass.C
BASKET = [line_item("A001", "amoxicillin", A, 1000), line_item("B001", "ibuprofen", B, 333, 2),
          line_item("C001", "vitamin C", C, 500)]


def settle_token(pos: PharmacyClient, world: World, key: str, *, card: int = 0, items: Any = None,
                 **fields: Any) -> settlement_pb2.SettlementRecord:
    return pos.settle(BASKET if items is None else items, idempotency_key=key, token=world.mint(card), **fields)


def verification_id(pos: PharmacyClient, token: str, *, purpose: int = Purpose.MEDICAL_SETTLEMENT,
                    min_assurance: int = Assurance.PIN) -> str:
    answer = pos.verify(token, purpose=purpose, min_assurance=min_assurance)
    assert answer.verification_id, answer
    return answer.verification_id


def adds_up(record: settlement_pb2.SettlementRecord) -> bool:
    shares = (record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen)
    return min(shares) >= 0 and sum(shares) == record.total_fen


@pytest.fixture
def store(server: InProcessServer) -> Iterator[SqlStore]:
    with database(server.db) as opened:
        yield opened


@pytest.fixture(scope="module")
def served(module_db_url: str) -> Iterator[InProcessServer]:
    """A server on each backend, SQLite then PostgreSQL, for the module: each test seeds a world of its
    own (its own merchants and cards, so its own settlements, keys and ledger rows)."""
    with InProcessServer(db=module_db_url) as running:
        yield running


def wait_all(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs work(0..count-1) on `count` threads released together; returns results or exceptions."""
    gate = threading.Barrier(count)

    def run(n: int) -> Any:
        gate.wait()
        try:
            return work(n)
        except EcardError as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


# -- the happy paths --------------------------------------------------------------------------------
def test_settle_by_token_splits_debits_and_reads_back(world: World, store: SqlStore, pos_client: Any) -> None:
    pos = pos_client
    record = settle_token(pos, world, "receipt-1")
    # A 1000 covered; B 666 -> 599.4 -> 599 covered; C 500 not covered; pharmacy fund share 0.
    assert (record.total_fen, record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen) == (
        2166, 0, 1599, 567)
    assert record.status == SettlementStatus.SETTLED
    assert record.personal_account_balance_fen == 100_000 - 1599
    assert record.ecard_id == world.ecard_ids[0]
    assert record.merchant_id == world.pharmacy_id
    assert list(record.items) == BASKET
    assert abs(record.settled_at.seconds - time.time()) < 60
    assert not record.HasField("refunded_at")
    assert pos.get_settlement(record.settlement_id) == record
    assert balance(world) == 100_000 - 1599
    assert ledger_rows(store, world)[-1] == ("SETTLE", -1599, 100_000 - 1599)
    assert_account_equals_ledger(store, world)


def test_settle_by_verification_id_at_a_hospital(world: World, store: SqlStore) -> None:
    with world.hospital() as pos:
        handle = verification_id(pos, world.mint(1))
        record = pos.settle(BASKET, idempotency_key="h-1", verification_id=handle)
    # covered 1000 + 599 = 1599; fund per line 500 + 299.5 -> 300 = 800; the account pays 799.
    assert (record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen) == (800, 799, 567)
    assert record.ecard_id == world.ecard_ids[1]
    assert store.ledger.fund_ledger_total(record.settlement_id) == 800
    assert assert_account_equals_ledger(store, world, 1) == 100_000 - 799


def test_skip_personal_account_and_small_balance(server: InProcessServer, store: SqlStore) -> None:
    world = World.seed(server.target, cards=1, balance_fen=700)
    with world.pharmacy() as pos:
        skipped = settle_token(pos, world, "skip", skip_personal_account=True)
        assert (skipped.personal_account_paid_fen, skipped.self_pay_fen) == (0, 2166)
        assert skipped.personal_account_balance_fen == 700
        short = settle_token(pos, world, "short")
        assert (short.personal_account_paid_fen, short.self_pay_fen) == (700, 1466)
        assert short.personal_account_balance_fen == 0
        empty = settle_token(pos, world, "empty")
        assert (empty.personal_account_paid_fen, empty.self_pay_fen) == (0, 2166)
    assert assert_account_equals_ledger(store, world) == 0


def test_policy_follows_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "ecard.toml"
    config.write_text("class_b_self_pay_ratio = 0.2\n[fund_ratio]\npharmacy = 0.1\n", encoding="utf-8")
    with InProcessServer(settings=Settings.from_toml(config)) as server:
        world = World.seed(server.target, cards=1)
        with world.pharmacy() as pos:
            record = settle_token(pos, world, "cfg", items=[line_item("B1", "b", B, 1000)])
    # B 1000 -> covered 800 -> fund 10 % = 80, account 720, self-pay 200.
    assert (record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen) == (80, 720, 200)


def test_settlement_service_is_listed_by_health(server: InProcessServer) -> None:
    with grpc.insecure_channel(server.target) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="ecard.v1.Settlement"), timeout=5
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


# -- concurrency: the account never goes below zero -------------------------------------------------
def test_fifty_concurrent_settles_pay_exactly_the_balance(served: InProcessServer) -> None:
    world = World.seed(served.target, cards=1, balance_fen=10_000)  # covers 10 baskets of 1000
    tokens = [world.mint(0) for _ in range(50)]
    items = [line_item("A1", "insulin", A, 1000)]
    with world.pharmacy() as pos:
        records = wait_all(50, lambda n: pos.settle(items, idempotency_key=f"c-{n}", token=tokens[n]))
    failures = [r for r in records if isinstance(r, Exception)]
    assert not failures, failures
    assert all(adds_up(r) for r in records)
    paid = sorted((r.personal_account_paid_fen for r in records), reverse=True)
    assert paid == [1000] * 10 + [0] * 40
    # Serialised: each paying settlement saw the balance its predecessor left.
    assert sorted(r.personal_account_balance_fen for r in records if r.personal_account_paid_fen) == list(
        range(0, 10_000, 1000))
    assert all(r.personal_account_balance_fen == 0 for r in records if not r.personal_account_paid_fen)
    assert len({r.settlement_id for r in records}) == 50
    with database(served.db) as store:
        assert assert_account_equals_ledger(store, world) == 0
        assert [row[1] for row in ledger_rows(store, world)].count(-1000) == 10


@pytest.mark.parametrize("credential", ["token", "verification_id"])
def test_twenty_concurrent_retries_move_money_once(served: InProcessServer, credential: str) -> None:
    world = World.seed(served.target, cards=1)
    with world.pharmacy() as pos:
        token = world.mint(0)
        fields = {"token": token} if credential == "token" else {"verification_id": verification_id(pos, token)}
        records = wait_all(20, lambda n: pos.settle(BASKET, idempotency_key="same-receipt", **fields))
    failures = [r for r in records if isinstance(r, Exception)]
    assert not failures, failures
    assert len({r.settlement_id for r in records}) == 1
    assert all(r == records[0] for r in records)
    with database(served.db) as store:
        assert [row[0] for row in ledger_rows(store, world)].count("SETTLE") == 1
        assert assert_account_equals_ledger(store, world) == 100_000 - 1599


def test_one_key_for_baskets_of_different_cards_settles_one(served: InProcessServer) -> None:
    """Concurrent requests that share a key but not a card lock different rows: the unique key decides."""
    world = World.seed(served.target, cards=3)
    tokens = [world.mint(n % 3) for n in range(12)]
    with world.pharmacy() as pos:
        results = wait_all(12, lambda n: pos.settle(BASKET, idempotency_key="shared", token=tokens[n]))
    settled = [r for r in results if not isinstance(r, Exception)]
    assert len({r.settlement_id for r in settled}) == 1
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, AlreadyExists) and r.reason == "IDEMPOTENCY_KEY_REUSED" for r in refused), refused
    with database(served.db) as store:
        assert settlement_count(store, world.pharmacy_id) == 1
        assert sorted(assert_account_equals_ledger(store, world, n) for n in range(3)) == [
            100_000 - 1599, 100_000, 100_000]


# -- idempotency ------------------------------------------------------------------------------------
def test_retry_returns_the_first_record_and_a_changed_request_is_refused(
    world: World, store: SqlStore, pos_client: Any
) -> None:
    pos = pos_client
    token = world.mint(0)
    first = pos.settle(BASKET, idempotency_key="r-1", token=token)
    # The token is spent, yet the retry is answered from the record, not REPLAYED.
    assert pos.settle(BASKET, idempotency_key="r-1", token=token) == first
    with pytest.raises(AlreadyExists) as reused:
        pos.settle(BASKET[:1], idempotency_key="r-1", token=token)
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(AlreadyExists):
        pos.settle(BASKET, idempotency_key="r-1", token=world.mint(0))
    # Keys are per merchant: the hospital's r-1 is its own.
    with world.hospital() as other:
        assert other.settle(BASKET, idempotency_key="r-1", token=world.mint(0)).settlement_id != first.settlement_id
    assert [row[0] for row in ledger_rows(store, world)].count("SETTLE") == 2
    assert_account_equals_ledger(store, world)


# -- credentials ------------------------------------------------------------------------------------
def test_verification_id_settles_once(world: World, store: SqlStore, pos_client: Any) -> None:
    pos = pos_client
    handle = verification_id(pos, world.mint(0))
    first = pos.settle(BASKET, idempotency_key="v-1", verification_id=handle)
    with pytest.raises(FailedPrecondition) as used:
        pos.settle(BASKET, idempotency_key="v-2", verification_id=handle)
    assert used.value.reason == "VERIFICATION_USED"
    assert pos.settle(BASKET, idempotency_key="v-1", verification_id=handle) == first
    assert settlement_count(store, world.pharmacy_id) == 1
    assert assert_account_equals_ledger(store, world) == 100_000 - 1599


@pytest.mark.parametrize(
    ("purpose", "assurance", "min_assurance"),
    [
        (Purpose.IDENTITY, Assurance.PIN, Assurance.PIN),  # verified for another purpose
        (Purpose.MEDICAL_SETTLEMENT, Assurance.NONE, Assurance.NONE),  # the holder typed no PIN
    ],
    ids=["identity-purpose", "no-pin"],
)
def test_verification_not_for_settlement_is_refused(world: World, store: SqlStore, purpose: int, assurance: int,
                                                    min_assurance: int) -> None:
    with world.pharmacy() as pos:
        handle = verification_id(pos, world.mint(0, assurance=assurance), purpose=purpose,
                                 min_assurance=min_assurance)
        with pytest.raises(FailedPrecondition) as refused:
            pos.settle(BASKET, idempotency_key="np", verification_id=handle)
    assert refused.value.reason == "VERIFICATION_NOT_FOR_SETTLEMENT"
    assert settlement_count(store, world.pharmacy_id) == 0
    assert balance(world) == 100_000


def test_verification_of_another_merchant_or_forged(world: World) -> None:
    with world.hospital() as hospital:
        handle = verification_id(hospital, world.mint(0))
    with world.pharmacy() as pos:
        with pytest.raises(PermissionDenied):
            pos.settle(BASKET, idempotency_key="theirs", verification_id=handle)
        with pytest.raises(InvalidArgument) as forged:
            pos.settle(BASKET, idempotency_key="forged", verification_id=handle[:-4] + "AAAA")
        assert forged.value.reason == "VERIFICATION_INVALID"
    assert balance(world) == 100_000


def test_card_lost_after_verify_cannot_settle(world: World, store: SqlStore, pos_client: Any) -> None:
    pos = pos_client
    handle = verification_id(pos, world.mint(0))
    with world.channel() as channel:
        channel.report_lost(ecard_id=world.ecard_ids[0])
    with pytest.raises(FailedPrecondition) as lost:
        pos.settle(BASKET, idempotency_key="lost-1", verification_id=handle)
    assert lost.value.reason == "CARD_LOST"
    with pytest.raises(FailedPrecondition) as by_token:
        settle_token(pos, world, "lost-2")
    assert by_token.value.reason == "CARD_LOST"
    assert settlement_count(store, world.pharmacy_id) == 0
    assert balance(world) == 100_000


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"purposes": [Purpose.IDENTITY]}, "PURPOSE_NOT_ALLOWED"),
        ({"assurance": Assurance.NONE}, "ASSURANCE_TOO_LOW"),
        ({"issued_at": int(time.time()) - 3600}, "EXPIRED"),
    ],
    ids=["purpose", "assurance", "expired"],
)
def test_rejected_token_is_failed_precondition(world: World, store: SqlStore, options: dict[str, Any],
                                               reason: str) -> None:
    with world.pharmacy() as pos, pytest.raises(FailedPrecondition) as rejected:
        pos.settle(BASKET, idempotency_key="rej", token=world.mint(0, **options))
    assert rejected.value.reason == reason
    assert settlement_count(store, world.pharmacy_id) == 0


def test_replayed_token_is_refused(world: World, pos_client: Any) -> None:
    pos = pos_client
    token = world.mint(0)
    verification_id(pos, token)
    with pytest.raises(FailedPrecondition) as replayed:
        pos.settle(BASKET, idempotency_key="replay", token=token)
    assert replayed.value.reason == "REPLAYED"
    assert balance(world) == 100_000


def test_verification_id_expires(tmp_path: Path) -> None:
    config = tmp_path / "ecard.toml"
    config.write_text("verification_window_s = 1\n", encoding="utf-8")
    with InProcessServer(settings=Settings.from_toml(config)) as server:
        world = World.seed(server.target, cards=1)
        with world.pharmacy() as pos:
            handle = verification_id(pos, world.mint(0))
            in_time = verification_id(pos, world.mint(0))
            settled = pos.settle(BASKET, idempotency_key="in-time", verification_id=in_time)
            time.sleep(2.2)
            with pytest.raises(FailedPrecondition) as expired:
                pos.settle(BASKET, idempotency_key="late", verification_id=handle)
            # A retry of the Settle made in time is still answered with its record once its
            # verification expired (the key is looked up when the verification cannot be used).
            retried = pos.settle(BASKET, idempotency_key="in-time", verification_id=in_time)
        assert expired.value.reason == "VERIFICATION_EXPIRED"
        assert retried == settled
        assert balance(world) == 100_000 - settled.personal_account_paid_fen


# -- refunds ----------------------------------------------------------------------------------------
def test_refund_restores_account_and_fund_exactly_once(world: World, store: SqlStore, hospital_client: Any) -> None:
    pos = hospital_client
    record = settle_token(pos, world, "to-refund")
    assert balance(world) == 100_000 - 799
    refunded = pos.refund(record.settlement_id, idempotency_key="refund-1", reason="returned unopened", full=True)
    assert refunded.status == SettlementStatus.REFUNDED
    assert refunded.HasField("refunded_at")
    assert refunded.personal_account_balance_fen == 100_000
    assert (refunded.fund_paid_fen, refunded.personal_account_paid_fen) == (800, 799)
    assert pos.get_settlement(record.settlement_id) == refunded
    # The same refund again: the same answer, no money.
    again = pos.refund(record.settlement_id, idempotency_key="refund-1", reason="returned unopened", full=True)
    assert again == refunded
    with pytest.raises(AlreadyExists):
        pos.refund(record.settlement_id, idempotency_key="refund-1", reason="another reason", full=True)
    with pytest.raises(FailedPrecondition) as twice:
        pos.refund(record.settlement_id, idempotency_key="refund-2", full=True)
    assert twice.value.reason == "ALREADY_REFUNDED"
    assert [row[:2] for row in ledger_rows(store, world)][-2:] == [("SETTLE", -799), ("REFUND", 799)]
    assert assert_account_equals_ledger(store, world) == 100_000
    assert store.ledger.fund_ledger_total(record.settlement_id) == 0


def test_concurrent_refunds_restore_once(served: InProcessServer) -> None:
    world = World.seed(served.target, cards=1)
    with world.pharmacy() as pos:
        record = settle_token(pos, world, "cr")
        results = wait_all(10, lambda n: pos.refund(record.settlement_id, idempotency_key=f"cr-{n}", full=True))
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(r.reason == "ALREADY_REFUNDED" for r in results if isinstance(r, EcardError))
    assert all(isinstance(r, settlement_pb2.SettlementRecord | FailedPrecondition) for r in results)
    with database(served.db) as store:
        assert assert_account_equals_ledger(store, world) == 100_000


def test_only_the_settling_merchant_may_read_or_refund(world: World, store: SqlStore) -> None:
    with world.pharmacy() as pos:
        record = settle_token(pos, world, "mine")
        with pytest.raises(NotFound):
            pos.get_settlement("S" + "A" * 16)
        with pytest.raises(NotFound):
            pos.refund("S" + "A" * 16, idempotency_key="nf", full=True)
    with world.hospital() as other:  # another merchant's settlement answers as an unknown one
        with pytest.raises(NotFound):
            other.get_settlement(record.settlement_id)
        with pytest.raises(NotFound):
            other.refund(record.settlement_id, idempotency_key="steal", full=True)
    # Naming the pharmacy in the request does not make the hospital the pharmacy.
    request = settlement_pb2.GetSettlementRequest(merchant_id=world.pharmacy_id, settlement_id=record.settlement_id)
    with pytest.raises(PermissionDenied):
        raw(world.target, world.hospital_id, "GetSettlement", request)
    assert balance(world) == 100_000 - 1599
    with world.pharmacy() as pos:
        assert pos.get_settlement(record.settlement_id).status == SettlementStatus.SETTLED


# -- input checks -----------------------------------------------------------------------------------
def raw(target: str, merchant_id: str, method: str, request: Any) -> Any:
    """One call on the bare stub, so that requests the SDK would refuse can be sent."""
    with grpc.insecure_channel(target) as channel:
        stub = settlement_pb2_grpc.SettlementStub(channel)
        try:
            return getattr(stub, method)(request, metadata=(("x-ecard-principal", f"merchant:{merchant_id}"),),
                                         timeout=10)
        except grpc.RpcError as exc:
            raise from_grpc_error(exc) from exc


def item(**changes: Any) -> settlement_pb2.LineItem:
    fields: dict[str, Any] = {"code": "A1", "name": "drug", "drug_class": A, "unit_price_fen": 100, "quantity": 1}
    return settlement_pb2.LineItem(**{**fields, **changes})


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("empty basket", {"items": []}, "EMPTY_BASKET"),
    ("501 lines", {"items": [item(code=f"X{n}") for n in range(501)]}, "BASKET_TOO_LARGE"),
    ("unspecified class", {"items": [item(drug_class=0)]}, "INVALID_DRUG_CLASS"),
    ("unknown class", {"items": [item(drug_class=7)]}, "INVALID_DRUG_CLASS"),
    ("zero price", {"items": [item(unit_price_fen=0)]}, "INVALID_PRICE"),
    ("negative price", {"items": [item(unit_price_fen=-1)]}, "INVALID_PRICE"),
    ("zero quantity", {"items": [item(quantity=0)]}, "INVALID_QUANTITY"),
    ("negative quantity", {"items": [item(quantity=-3)]}, "INVALID_QUANTITY"),
    ("missing code", {"items": [item(code="")]}, "MISSING_ITEM_CODE"),
    ("line overflows", {"items": [item(unit_price_fen=2**62, quantity=2)]}, "AMOUNT_TOO_LARGE"),
    ("sum overflows", {"items": [item(unit_price_fen=2**62), item(unit_price_fen=2**62)]}, "AMOUNT_TOO_LARGE"),
    ("missing idempotency key", {"idempotency_key": ""}, "MISSING_IDEMPOTENCY_KEY"),
    ("idempotency key too long", {"idempotency_key": "k" * 129}, "INVALID_IDEMPOTENCY_KEY"),
    ("missing credential", {"token": None}, "MISSING_CREDENTIAL"),
]


def test_invalid_requests_write_and_consume_nothing(world: World, store: SqlStore) -> None:
    token = world.mint(0)
    for what, changes, reason in INVALID:
        fields: dict[str, Any] = {"idempotency_key": "bad", "token": token, "items": [item()]}
        fields.update(changes)
        if fields["token"] is None:
            del fields["token"]
        with pytest.raises(InvalidArgument) as invalid:
            raw(world.target, world.pharmacy_id, "Settle", settlement_pb2.SettleRequest(**fields))
        assert invalid.value.reason == reason, what
    with pytest.raises(InvalidArgument):
        raw(world.target, world.pharmacy_id, "Refund", settlement_pb2.RefundRequest(settlement_id="S1"))
    assert settlement_count(store, world.pharmacy_id) == 0
    assert balance(world) == 100_000
    # The token was never consumed: it still settles.
    with world.pharmacy() as pos:
        assert pos.settle([item()], idempotency_key="good", token=token).total_fen == 100


class LedgerDownAtSettle(SqlLedger):
    """The real SQLite store's ledger, with a fault injected: its next `settle` finds the database
    unavailable, after the token was verified and its nonce consumed (what a dropped PostgreSQL
    connection does)."""

    fail_next = False

    def settle(self, draft: Draft, now: int) -> SettlementRecord:
        if self.fail_next:
            self.fail_next = False
            raise Unavailable("database unavailable", "STORE_UNAVAILABLE")
        return super().settle(draft, now)


def test_token_of_a_settlement_that_could_not_be_written_works_on_retry(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ecard.db")
    ledger = store.ledger = LedgerDownAtSettle(store)  # type: ignore[misc]
    deployment = Deployment.assemble(Settings(), store, LocalChangeBus(), MemoryNonceStore(), clock=time.time)
    try:
        holder = ("C0000009", "钱小红", "330203199202021234")
        deployment.admin.upsert_issuer("bank", "bank")
        key = generate_private_key()
        kid = deployment.admin.register_key("bank", "", ED25519, public_key_pem(key), None, None).kid
        deployment.admin.upsert_merchant("pharmacy-1", "pharmacy", MerchantKind.PHARMACY, "330200", True)
        deployment.admin.enroll_cards([EnrollInput(*holder, "330200", 10_000)])
        signer = TokenSigner(key, issuer_id="bank", kid=kid)
        face = Statement.of(signer.attest(holder[0]))
        ecard_id = deployment.cards.issue_ecard(Principal(CHANNEL, "bank"), *holder, face).ecard_id
        token = signer.mint(
            ecard_id, purposes=[Purpose.MEDICAL_SETTLEMENT], assurance=Assurance.PIN
        )
        basket = (LineItem("A001", "amoxicillin", A, 1000, 1),)
        settle = SettleInput(idempotency_key="k1", items=basket, token=token)
        ledger.fail_next = True
        with pytest.raises(Unavailable):
            deployment.settlements.settle("pharmacy-1", settle)
        record = deployment.settlements.settle("pharmacy-1", settle)  # the SDK's retry: same key, same token
        assert record.total_fen == 1000
        assert deployment.settlements.settle("pharmacy-1", settle) == record  # and once more: the same record
        with pytest.raises(FailedPrecondition) as again:  # the token is spent now, for good
            deployment.settlements.settle("pharmacy-1", SettleInput(idempotency_key="k2", items=basket, token=token))
        assert again.value.reason == "REPLAYED"
        assert store.ledger.ledger_total("C0000009") == 10_000 - record.account_fen
    finally:
        deployment.close()
