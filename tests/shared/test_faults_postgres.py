"""PostgreSQL restarted during a settlement load: no acknowledged settlement lost, no double debit
after the SDK's retries with the same key, and ecard recovers without being restarted.

The PostgreSQL is the test's own (tests/helpers/services.py), never the machine's shared one."""

from __future__ import annotations

import collections
import time

import pytest

from ecard import RetryConfig, SettlementStatus
from ecard.testing import EcardServer, World
from ecard_server.storage import open_store
from tests.helpers.load import ITEMS, PRICE_FEN, settle_load
from tests.helpers.services import own_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
BALANCE_FEN = 10_000_000


def test_postgres_restart_during_settlements_loses_nothing_and_heals() -> None:
    with own_postgres() as pg, EcardServer(db=pg.url) as server:
        world = World.seed(server.target, cards=4, balance_fen=BALANCE_FEN)
        load, tokens = settle_load(world, callers=4, retry=RetryConfig(max_attempts=3, max_backoff=0.2))
        load.start()
        try:
            load.wait_for(40)
            down = time.monotonic()
            pg.stop()
            time.sleep(3.0)  # longer than the SDK's retries: some receipts fail and are retried below
            pg.start()
            up = time.monotonic()
            recovery_s = load.wait_for(1, since=up, timeout=30)
            load.wait_for(40, since=up, timeout=60)
        finally:
            load.stop()
        outcomes = collections.Counter(a.outcome for a in load.answers)
        failed_while_down = sum(1 for a in load.answers if a.outcome != "OK" and down <= a.at)
        print(f"\npostgres restart: {len(load.answers)} settles, outcomes {dict(outcomes)}, down {up - down:.2f} s, "
              f"first OK {recovery_s:.2f} s after it was back, {failed_while_down} refused (after retries)")
        assert set(outcomes) <= {"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"}, outcomes  # never INTERNAL
        assert server.process is not None and server.process.poll() is None  # the same process throughout

        acknowledged = {a.key: a.settlement_id for a in load.answers if a.outcome == "OK"}
        with world.pharmacy() as pos:
            for settlement_id in acknowledged.values():
                record = pos.get_settlement(settlement_id)
                assert record.status == SettlementStatus.SETTLED and record.personal_account_paid_fen == PRICE_FEN
            # Retrying every receipt with its key and token: each ends with exactly one settlement.
            for answer in load.answers:
                record = pos.settle(ITEMS, idempotency_key=answer.key, token=tokens[answer.key])
                if answer.key in acknowledged:
                    assert record.settlement_id == acknowledged[answer.key]
        store = open_store(pg.url)
        try:
            settled = store.rows("SELECT COUNT(*) FROM settlements WHERE merchant_id = ?", (world.pharmacy_id,))
            assert int(settled[0][0]) == len(load.answers)
            by_card = collections.Counter(a.card for a in load.answers)
            with world.admin() as admin:
                for card, (card_no, _, _) in enumerate(world.cards):
                    expected = BALANCE_FEN - PRICE_FEN * by_card[card]
                    assert store.ledger.ledger_total(card_no) == expected  # no double debit
                    assert admin.get_ecard(world.ecard_ids[card]).personal_account_balance_fen == expected
        finally:
            store.close()
