"""An acknowledged settlement survives kill -9 of the `ecard serve` process, on each backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ecard import ClientOptions, DrugClass, EcardError, PharmacyClient, RetryConfig, SettlementStatus, line_item
from ecard.testing import EcardServer, World
from tests.helpers.ledger import assert_account_equals_ledger, database, settlement_count

A = DrugClass.A


@pytest.fixture
def served(db_url: str) -> Iterator[EcardServer]:
    """A server process on each backend: SQLite, then PostgreSQL."""
    with EcardServer(db=db_url) as running:
        yield running


def test_sigkill_loses_no_acknowledged_settlement(served: EcardServer) -> None:
    world = World.seed(served.target, cards=1, balance_fen=10_000_000)
    items = [line_item("A1", "insulin", A, 123)]
    acknowledged: dict[str, str] = {}
    attempted: dict[str, str] = {}  # idempotency key -> token
    lock = threading.Lock()
    stop = threading.Event()
    options = ClientOptions(timeout=2.0, retry=RetryConfig(max_attempts=1))

    def counter(n: int) -> None:
        with PharmacyClient(world.target, merchant_id=world.pharmacy_id, options=options) as pos:
            for k in range(10_000):
                if stop.is_set():
                    return
                key, token = f"k-{n}-{k}", world.mint(0)
                with lock:
                    attempted[key] = token
                try:
                    record = pos.settle(items, idempotency_key=key, token=token)
                except EcardError:
                    return  # the server is gone
                with lock:
                    acknowledged[key] = record.settlement_id

    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(counter, n) for n in range(4)]
        deadline = time.monotonic() + 30
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        served.kill()
        stop.set()
        for future in running:
            future.result()
    assert len(acknowledged) >= 40
    served.start()
    with world.pharmacy() as pos:
        for key, settlement_id in acknowledged.items():
            record = pos.get_settlement(settlement_id)
            assert record.status == SettlementStatus.SETTLED and record.personal_account_paid_fen == 123, key
        # Retrying every attempt with its key is safe: each key ends with exactly one settlement.
        for key, token in attempted.items():
            record = pos.settle(items, idempotency_key=key, token=token)
            if key in acknowledged:
                assert record.settlement_id == acknowledged[key]
    with database(served.db) as store:
        assert settlement_count(store, world.pharmacy_id) == len(attempted)
        assert assert_account_equals_ledger(store, world) == 10_000_000 - 123 * len(attempted)
