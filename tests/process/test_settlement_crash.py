"""An acknowledged settlement survives kill -9 of the `ecard serve` process, on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ecard import DrugClass, SettlementStatus, line_item
from ecard.errors import FailedPrecondition
from ecard.testing import EcardServer, World
from tests.helpers.ledger import assert_account_equals_ledger, database, settlement_count
from tests.helpers.settling import SettleLoad

A = DrugClass.A


@pytest.fixture
def served(db_url: str) -> Iterator[EcardServer]:
    """A server process on each backend: SQLite, then PostgreSQL."""
    with EcardServer(db=db_url) as running:
        yield running


def test_sigkill_loses_no_acknowledged_settlement(served: EcardServer) -> None:
    world = World.seed(served.target, cards=1, balance_fen=10_000_000)
    items = [line_item("A1", "insulin", A, 123)]
    load = SettleLoad(world, served.target, items)
    load.run(served.kill, after=40)
    acknowledged, attempted = load.acknowledged, load.attempted
    assert len(acknowledged) >= 40
    served.start()
    with world.pharmacy() as pos:
        for key, settlement_id in acknowledged.items():
            record = pos.get_settlement(settlement_id)
            assert record.status == SettlementStatus.SETTLED and record.personal_account_paid_fen == 123, key
        # Retrying every attempt with its key is safe: an acknowledged one answers its settlement; one cut
        # by the crash either committed (and answers it) or not, and then its token is REPLAYED: the
        # nonces consumed by the dead process were in its memory only, so any of its tokens may have
        # been used (the holder shows a fresh code). No key settles twice.
        settled = 0
        for key, token in attempted.items():
            try:
                record = pos.settle(items, idempotency_key=key, token=token)
            except FailedPrecondition as refused:
                assert key not in acknowledged and refused.reason == "REPLAYED", (key, refused)
                continue
            settled += 1
            if key in acknowledged:
                assert record.settlement_id == acknowledged[key]
    with database(served.db) as store:
        assert settlement_count(store, world.pharmacy_id) == settled >= len(acknowledged)
        assert assert_account_equals_ledger(store, world) == 10_000_000 - 123 * settled
