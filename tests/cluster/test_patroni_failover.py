"""PostgreSQL failover under Patroni: ecard on a multi-host URL (target_session_attrs=read-write) keeps
settling across the loss of the primary. Patroni (etcd as its store) promotes the synchronous standby,
ecard heals without a restart, every acknowledged settlement is there exactly once, the POS's retries
with the same key move money once, and the ledgers balance. The outage the POS saw (first to last
UNAVAILABLE) and the recovery are printed (`pytest -s`); `make ha-demo` runs the same by hand."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ecard import SettlementStatus
from ecard.testing import EcardServer, World
from ecard_server.storage import open_store
from loadtest.rig.ha import PatroniCluster
from loadtest.rig.ha_demo import PRICE_FEN, Counters, settle_through_failover
from tests.helpers.deployment import config_file

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.serial, pytest.mark.timeout(240)]
BALANCE_FEN = 10_000_000


def test_the_primary_fails_over_and_no_settlement_is_lost_or_doubled(redis_url: str, tmp_path: Path) -> None:
    with PatroniCluster() as cluster:
        config = config_file(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}")
        with EcardServer(db=cluster.url, redis=redis_url, extra_args=["--config", config]) as server:
            world = World.seed(server.target, cards=8, balance_fen=BALANCE_FEN)
            counters = Counters()
            failover = settle_through_failover(cluster, server, world, counters)
            print(f"\n{failover}")
            assert server.process is not None and server.process.poll() is None  # healed, never restarted
            assert failover.total >= failover.before + 40 and not counters.other_errors, counters.other_errors[:5]

            with world.pharmacy() as pos:  # every receipt the POS holds is a settlement, unchanged
                for settlement_id in counters.acknowledged.values():
                    record = pos.get_settlement(settlement_id)
                    assert record.status == SettlementStatus.SETTLED and record.total_fen == PRICE_FEN
            store = open_store(cluster.url)
            try:  # exactly once per key, and each account debited once per receipt
                rows = store.rows("SELECT idempotency_key, COUNT(*) FROM settlements WHERE merchant_id = ? "
                                  "GROUP BY idempotency_key", (world.pharmacy_id,))
                assert {key: int(n) for key, n in rows} == dict.fromkeys(counters.acknowledged, 1)
                with world.admin() as admin:
                    for card, (card_no, _, _) in enumerate(world.cards):
                        expected = BALANCE_FEN - PRICE_FEN * counters.receipts_by_card[card]
                        assert store.ledger.ledger_total(card_no) == expected
                        assert admin.get_ecard(world.ecard_ids[card]).personal_account_balance_fen == expected
            finally:
                store.close()
