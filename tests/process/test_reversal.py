"""Reversal (冲正) by the Settle's idempotency key, over real `ecard serve` processes (SQLite, PostgreSQL).

What a POS that lost a Settle's answer relies on: reversing the key refunds the settlement in full if
there was one, bars the key if there was none (a late or retried Settle with it is REVERSED and moves
nothing), and a Settle held in the network while the reversal runs ends as exactly one of "settled,
then refunded" or "never settled", also when the two calls reach different replicas.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ecard import (
    Assurance,
    ClientOptions,
    DrugClass,
    EcardError,
    FailedPrecondition,
    InvalidArgument,
    PharmacyClient,
    Purpose,
    RetryConfig,
    SettlementStatus,
    line_item,
)
from ecard.testing import EcardServer, World
from ecard.v1 import settlement_pb2
from ecard_server.storage import open_store
from tests.helpers.deployment import config_file
from tests.helpers.proxy import TcpProxy

A, B, C = DrugClass.A, DrugClass.B, DrugClass.C
BASKET = [
    line_item("XA01", "amoxicillin 0.25 g x 24", A, 1280, 2),
    line_item("XB07", "ibuprofen 0.3 g x 20", B, 1550),
    line_item("XC11", "vitamin C 100 mg x 100", C, 900),
]
START = 100_000
PATIENT = ClientOptions(timeout=30.0, retry=RetryConfig(max_attempts=1))


# One server per backend for the module, not one per test: every test seeds a world of its own (its own
# issuer, merchants and cards, so its own settlements, ledger rows and audit events), and what is tested is
# reversal, not a fresh server.
@pytest.fixture(scope="module")
def served(module_db_url: str) -> Iterator[EcardServer]:
    with EcardServer(db=module_db_url) as running:
        yield running


def balance(world: World, card: int = 0) -> int:
    with world.admin() as admin:
        return admin.get_ecard(world.ecard_ids[card]).personal_account_balance_fen


def fund_net(db_url: str, merchant_id: str) -> int:
    """What the pooled fund paid to the merchant, net of what came back."""
    store = open_store(db_url)
    try:
        return int(store.rows("SELECT COALESCE(SUM(delta_fen), 0) FROM fund_ledger WHERE merchant_id = ?",
                              (merchant_id,))[0][0])
    finally:
        store.close()


def test_a_settlement_is_refunded_in_full_once_and_its_key_answers_the_same(
    served: EcardServer, module_db_url: str
) -> None:
    world = World.seed(served.target, cards=1, balance_fen=START)
    with world.hospital() as pos:
        token = world.mint(0)
        record = pos.settle(BASKET, idempotency_key="R-1", token=token, terminal_id="till-1")
        assert balance(world) < START and fund_net(module_db_url, world.hospital_id) == record.fund_paid_fen > 0
        first = pos.reverse_settlement("R-1", terminal_id="till-2", operator_id="op-7")
        assert first.settled and first.settlement.settlement_id == record.settlement_id
        done = first.settlement
        assert done.status == SettlementStatus.REFUNDED and done.refunded_fen == record.total_fen
        assert done.HasField("reversed_at") and done.idempotency_key == "R-1" and done.terminal_id == "till-1"
        [entry] = done.refunds
        assert entry.reversal and entry.idempotency_key == "reversal:R-1" and entry.terminal_id == "till-2"
        assert (entry.fund_fen, entry.personal_account_fen, entry.self_pay_fen) == (
            record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen)
        assert balance(world) == START and fund_net(module_db_url, world.hospital_id) == 0
        again = pos.reverse_settlement("R-1")
        assert again.settlement == done and again.reversed_at == first.reversed_at
        # the Settle retried with its key: the first record as it now stands, nothing moves
        assert pos.settle(BASKET, idempotency_key="R-1", token=token) == done
        assert balance(world) == START
    with world.admin() as admin:  # the server is the module's: this world's merchant's events
        [event] = [e for e in admin.audit_events(kind="REVERSAL") if e.actor == f"merchant:{world.hospital_id}"]
    assert event.actor == f"merchant:{world.hospital_id}" and "key=R-1" in event.detail


def test_a_key_with_nothing_settled_is_barred_for_good(served: EcardServer, module_db_url: str) -> None:
    world = World.seed(served.target, cards=1, balance_fen=START)
    with world.pharmacy() as pos:
        reversal = pos.reverse_settlement("R-lost")
        assert not reversal.settled and not reversal.HasField("settlement") and reversal.HasField("reversed_at")
        for credential in ({"token": world.mint(0)}, {"verification_id": pos.verify(
                world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT, min_assurance=Assurance.PIN).verification_id}):
            with pytest.raises(FailedPrecondition) as refused:
                pos.settle(BASKET, idempotency_key="R-lost", **credential)
            assert refused.value.reason == "REVERSED"
        assert pos.reverse_settlement("R-lost").reversed_at == reversal.reversed_at
        assert list(pos.list_settlements()) == []
    assert balance(world) == START and fund_net(module_db_url, world.pharmacy_id) == 0


def test_a_partly_refunded_settlement_gives_back_the_rest(served: EcardServer) -> None:
    world = World.seed(served.target, cards=1, balance_fen=START)
    with world.hospital() as pos:
        record = pos.settle(BASKET, idempotency_key="R-2", token=world.mint(0))
        pos.refund(record.settlement_id, idempotency_key="R-2-r1", lines=[("XA01", 1)])
        done = pos.reverse_settlement("R-2").settlement
        assert done.status == SettlementStatus.REFUNDED and done.refunded_fen == record.total_fen
        assert [(e.reversal, e.amount_fen) for e in done.refunds] == [(False, 1280), (True, record.total_fen - 1280)]
        # a settlement that refunds gave back already: reversed, nothing more to move
        other = pos.settle(BASKET[:1], idempotency_key="R-3", token=world.mint(0))
        pos.refund(other.settlement_id, idempotency_key="R-3-r1", full=True)
        after = pos.reverse_settlement("R-3").settlement
        assert after.HasField("reversed_at") and [e.reversal for e in after.refunds] == [False]
    assert balance(world) == START


def test_reversal_requests_are_checked(served: EcardServer) -> None:
    world = World.seed(served.target, cards=1, balance_fen=START)
    with world.pharmacy() as pos:
        record = pos.settle(BASKET, idempotency_key="R-4", token=world.mint(0))
        with pytest.raises(InvalidArgument) as reserved:
            pos.refund(record.settlement_id, idempotency_key="reversal:R-4", full=True)
        assert reserved.value.reason == "RESERVED_IDEMPOTENCY_KEY"
        for key, fields, reason in (("x" * 129, {}, "INVALID_IDEMPOTENCY_KEY"),
                                    ("R-4", {"terminal_id": "till 1"}, "INVALID_TERMINAL_ID"),
                                    ("R-4", {"operator_id": "o" * 65}, "INVALID_OPERATOR_ID")):
            with pytest.raises(InvalidArgument) as bad:
                pos.reverse_settlement(key, **fields)
            assert bad.value.reason == reason
        with pytest.raises(InvalidArgument):
            pos.settle(BASKET, idempotency_key="R-5", token=world.mint(0), terminal_id="bad/till")
        # another merchant's key is another key: reversing it here touches nothing of theirs
        with world.hospital() as other:
            assert not other.reverse_settlement("R-4").settled
        assert pos.get_settlement(record.settlement_id).status == SettlementStatus.SETTLED


# -- a Settle held in the network, racing its reversal ------------------------------------------------
def outcome(pos: PharmacyClient, world: World, key: str) -> str:
    """"refunded" (settled, then refunded in full) or "never" (nothing settled under the key); anything
    else fails the test."""
    records = [r for r in pos.list_settlements() if r.idempotency_key == key]
    if not records:
        return "never"
    [record] = records
    assert record.status == SettlementStatus.REFUNDED and record.HasField("reversed_at"), record
    assert record.refunded_fen == record.total_fen
    return "refunded"


def held_settle(relayed: PharmacyClient, proxy: TcpProxy, world: World, key: str, direction: str) -> tuple[
        threading.Thread, list[Any]]:
    """Starts a Settle through the relay with `direction` held; returns once the relay holds its bytes."""
    proxy.hold(direction)
    answers: list[Any] = []

    def run() -> None:
        try:
            answers.append(relayed.settle(BASKET, idempotency_key=key, token=world.mint(0)))
        except EcardError as exc:
            answers.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = threading.Event()
    for _ in range(500):
        if proxy.held[direction]:
            break
        deadline.wait(0.02)
    assert proxy.held[direction], "the Settle never reached the relay"
    return thread, answers


@pytest.fixture(scope="module", params=["one replica", "two replicas"])
def replicas(request: pytest.FixtureRequest, module_db_url: str, served: EcardServer,
             pg_module_databases: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[EcardServer, EcardServer, str]]:
    """Replica A, replica B (A itself for "one replica") and their database, for the module."""
    # Replicas of one PostgreSQL database share their nonces in Redis (PostgreSQL alone is one process;
    # SQLite without Redis is one server too: a second is refused).
    if request.param == "one replica":
        yield served, served, module_db_url
        return
    if module_db_url.startswith("sqlite"):
        pytest.skip("SQLite without Redis is one server: replicas need PostgreSQL and Redis")
    url = pg_module_databases()  # not the database of `served`, the one process there without Redis
    redis = str(request.getfixturevalue("redis_module_url"))
    folder = tmp_path_factory.mktemp("replicas")
    args = ["--config", config_file(folder, f"ecard-test-{uuid.uuid4().hex[:12]}")]
    with EcardServer(db=url, redis=redis, extra_args=args) as a, EcardServer(db=url, redis=redis, extra_args=args) as b:
        yield a, b, url


@pytest.fixture
def pair(replicas: tuple[EcardServer, EcardServer, str], tcp_proxy: Callable[[str], TcpProxy]) -> Iterator[
        tuple[World, PharmacyClient, PharmacyClient, TcpProxy, str]]:
    """A world of its own, a POS whose calls go through a relay to replica A, a POS straight to A or to
    B, and the database."""
    a, b, url = replicas
    world = World.seed(a.target, cards=1, balance_fen=START)
    proxy = tcp_proxy(f"tcp://{a.target}")
    with PharmacyClient(f"127.0.0.1:{proxy.port}", merchant_id=world.hospital_id, options=PATIENT) as relayed, \
            PharmacyClient(b.target, merchant_id=world.hospital_id) as direct:
        relayed.reverse_settlement(f"warm-{uuid.uuid4().hex}")  # the relayed connection is up
        yield world, relayed, direct, proxy, url


def test_a_settle_held_until_after_its_reversal_never_settles(
    pair: tuple[World, PharmacyClient, PharmacyClient, TcpProxy, str]
) -> None:
    world, relayed, direct, proxy, module_db_url = pair
    thread, answers = held_settle(relayed, proxy, world, "H-1", "up")
    assert not direct.reverse_settlement("H-1").settled
    proxy.release()
    thread.join(30)
    [answer] = answers
    assert isinstance(answer, FailedPrecondition) and answer.reason == "REVERSED"
    assert outcome(direct, world, "H-1") == "never"
    assert balance(world) == START and fund_net(module_db_url, world.hospital_id) == 0


def test_a_settle_whose_answer_is_held_is_settled_then_refunded(
    pair: tuple[World, PharmacyClient, PharmacyClient, TcpProxy, str]
) -> None:
    world, relayed, direct, proxy, module_db_url = pair
    thread, answers = held_settle(relayed, proxy, world, "H-2", "down")
    for _ in range(500):  # the server may send other frames first: wait for the settlement itself
        if any(r.idempotency_key == "H-2" for r in direct.list_settlements()):
            break
        threading.Event().wait(0.02)
    reversal = direct.reverse_settlement("H-2")
    assert reversal.settled and reversal.settlement.status == SettlementStatus.REFUNDED
    proxy.release()
    thread.join(30)
    [answer] = answers
    assert isinstance(answer, settlement_pb2.SettlementRecord) and answer.settlement_id == (
        reversal.settlement.settlement_id)
    assert outcome(direct, world, "H-2") == "refunded"
    assert balance(world) == START and fund_net(module_db_url, world.hospital_id) == 0


def test_released_settles_racing_their_reversals_end_one_way_or_the_other(
    pair: tuple[World, PharmacyClient, PharmacyClient, TcpProxy, str]
) -> None:
    world, relayed, direct, proxy, module_db_url = pair
    seen = set()
    for n in range(12):
        key = f"H-race-{n}"
        thread, answers = held_settle(relayed, proxy, world, key, "up")
        go = threading.Barrier(2)
        reversal: list[Any] = []

        def reverse(key: str = key, go: threading.Barrier = go, reversal: list[Any] = reversal) -> None:
            go.wait()
            reversal.append(direct.reverse_settlement(key))

        racer = threading.Thread(target=reverse)
        racer.start()
        go.wait()
        proxy.release()
        thread.join(30)
        racer.join(30)
        [answer], [reversed_] = answers, reversal
        ending = outcome(direct, world, key)
        seen.add(ending)
        if ending == "never":
            assert isinstance(answer, FailedPrecondition) and answer.reason == "REVERSED"
            assert not reversed_.settled
        else:
            assert isinstance(answer, settlement_pb2.SettlementRecord) and reversed_.settled
        assert balance(world) == START and fund_net(module_db_url, world.hospital_id) == 0
    assert seen <= {"never", "refunded"}
