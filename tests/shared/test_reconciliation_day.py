"""A day at a hospital's three tills, reconciled (对账): two replicas on PostgreSQL and Redis, one of them
SIGKILLed halfway; settles, partial refunds and reversals, every uncertain Settle reversed by its key.
The POS keeps its own receipts of what each call answered; at the end the statement (DailyTotals, per
terminal and in all) and the listed records (ListSettlements) equal those receipts: zero differences."""

from __future__ import annotations

import datetime
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ecard import ClientOptions, DeadlineExceeded, DrugClass, PharmacyClient, RetryConfig, Unavailable, line_item
from ecard.testing import EcardServer, World
from ecard.v1 import settlement_pb2
from ecard_server.core.rules.statements import SHANGHAI
from tests.helpers.deployment import config_file

A, B, C = DrugClass.A, DrugClass.B, DrugClass.C
CATALOGUE = [line_item("REG01", "registration", A, 500), line_item("EX-CBC", "blood count", B, 2500),
             line_item("XA01", "amoxicillin", A, 1280), line_item("XB07", "ibuprofen", B, 1550),
             line_item("XC11", "vitamin C", C, 900)]
TILLS = ("till-1", "till-2", "till-3")
FIELDS = ("settlements", "total_fen", "fund_fen", "personal_account_fen", "self_pay_fen", "refunds",
          "fund_refunded_fen", "personal_account_refunded_fen", "self_pay_refunded_fen", "reversals", "reversed_fen")


class Receipts:
    """What the POS itself knows, from the answers it got: per terminal, the statement's fields."""

    def __init__(self) -> None:
        self.by_till: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
        self.settlements: dict[str, settlement_pb2.SettlementRecord] = {}  # by settlement id: as last answered

    def settled(self, record: settlement_pb2.SettlementRecord) -> None:
        till = self.by_till[record.terminal_id]
        till["settlements"] += 1
        for name, value in (("total_fen", record.total_fen), ("fund_fen", record.fund_paid_fen),
                            ("personal_account_fen", record.personal_account_paid_fen),
                            ("self_pay_fen", record.self_pay_fen)):
            till[name] += value
        self.settlements[record.settlement_id] = record

    def gave_back(self, record: settlement_pb2.SettlementRecord, key: str) -> None:
        """A refund (or a reversal) whose entry in `record` has `key`: counted with its settlement's till."""
        [entry] = [e for e in record.refunds if e.idempotency_key == key]
        till = self.by_till[record.terminal_id]
        till["refunds" if not entry.reversal else "reversals"] += 1
        till["fund_refunded_fen"] += entry.fund_fen
        till["personal_account_refunded_fen"] += entry.personal_account_fen
        till["self_pay_refunded_fen"] += entry.self_pay_fen
        if entry.reversal:
            till["reversed_fen"] += entry.amount_fen
        self.settlements[record.settlement_id] = record

    def total(self) -> dict[str, int]:
        return {name: sum(till[name] for till in self.by_till.values()) for name in FIELDS}


@pytest.fixture
def replicas(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[EcardServer, EcardServer]]:
    namespace = f"ecard-test-{uuid.uuid4().hex[:12]}"
    config = config_file(tmp_path, namespace)
    a = EcardServer(db=pg_url, redis=redis_url, extra_args=["--config", config])
    b = EcardServer(db=pg_url, redis=redis_url, extra_args=["--config", config])
    try:
        with a, b:
            yield a, b
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{namespace}*", count=10_000))
        if keys:
            client.delete(*keys)


def test_a_day_of_checkouts_with_a_replica_killed_reconciles_to_zero_differences(
    replicas: tuple[EcardServer, EcardServer],
) -> None:
    a, b = replicas
    world = World.seed(a.target, cards=6, balance_fen=20_000)
    rng = random.Random(20)
    receipts = Receipts()
    uncertain = reversed_unsettled = 0
    options = ClientOptions(timeout=5.0, retry=RetryConfig(max_attempts=6, initial_backoff=0.05, max_backoff=0.5))
    with PharmacyClient([a.target, b.target], merchant_id=world.hospital_id, options=options) as pos:
        for n in range(48):
            if n == 24:  # halfway through the day one replica dies, likely in the middle of a call
                threading.Timer(0.05, a.kill).start()
            till, key = TILLS[n % 3], f"R-{n:04d}"
            basket = rng.sample(CATALOGUE, rng.randint(1, 4))
            try:
                record = pos.settle(basket, idempotency_key=key, token=world.mint(n % 6), terminal_id=till,
                                    operator_id=f"op-{n % 2}")
            except (Unavailable, DeadlineExceeded):
                uncertain += 1  # the documented path: reverse by the key, then the receipt says what happened
                reversal = pos.reverse_settlement(key, terminal_id=till)
                if reversal.settled:
                    receipts.settled(reversal.settlement)
                    receipts.gave_back(reversal.settlement, "reversal:" + key)
                else:
                    reversed_unsettled += 1
                continue
            receipts.settled(record)
            if n % 7 == 3:  # the holder brings a line back
                code = record.items[0].code
                refund_key = key + "-r"
                answer = pos.refund(record.settlement_id, idempotency_key=refund_key, lines=[(code, 1)],
                                    terminal_id=till)
                receipts.gave_back(answer, refund_key)
            elif n % 7 == 5:  # a goodwill amount
                refund_key = key + "-g"
                answer = pos.refund(record.settlement_id, idempotency_key=refund_key, amount_fen=100,
                                    terminal_id=till)
                receipts.gave_back(answer, refund_key)
            elif n % 11 == 6:  # the cashier reverses the whole receipt (冲正)
                reversal = pos.reverse_settlement(key, terminal_id=till)
                assert reversal.settled
                receipts.gave_back(reversal.settlement, "reversal:" + key)
        days = {datetime.datetime.fromtimestamp(r.settled_at.seconds, SHANGHAI).date().isoformat()
                for r in receipts.settlements.values()}
        assert len(days) == 1, "the test crossed midnight in Asia/Shanghai: run it again"
        [day] = days
        statement = pos.daily_totals(day)
        since = datetime.datetime.fromtimestamp(statement.since.seconds, datetime.UTC)
        until = datetime.datetime.fromtimestamp(statement.until.seconds, datetime.UTC)
        listed = {r.settlement_id: r for r in pos.list_settlements(since=since, until=until, page_size=7)}

    def fields(totals: settlement_pb2.SettlementTotals) -> dict[str, int]:
        return {name: getattr(totals, name) for name in FIELDS}

    differences = {till: (receipts.by_till[till], fields(t)) for t in statement.terminals
                   for till in [t.terminal_id] if receipts.by_till[till] != fields(t)}
    assert differences == {}
    assert fields(statement.total) == receipts.total()
    assert {t.terminal_id for t in statement.terminals} == set(receipts.by_till)
    # record by record: the same settlements, each as the POS last saw it
    assert set(listed) == set(receipts.settlements)
    assert all(listed[i].refunded_fen == r.refunded_fen and listed[i].total_fen == r.total_fen
               for i, r in receipts.settlements.items())
    assert statement.total.settlements == 48 - reversed_unsettled
