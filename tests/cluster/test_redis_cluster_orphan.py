"""A Redis Cluster master lost for good (SIGKILLed, never restarted) under a Verify load: its replica is
promoted with no replica of its own, and a nonce only that new master held could die with it, so its
slots refuse (UNAVAILABLE `NONCE_STORE_UNREPLICATED`: never an accept) while the other shards accept;
an operator attaches a new node as its replica (`redis-cli --cluster add-node --cluster-slave`, the
runbook in docs/operations.md), and ecard accepts on every slot again without a restart. No token is
accepted twice, throughout."""

from __future__ import annotations

import collections
import time

import pytest

from ecard import Purpose, Reason
from ecard.testing import EcardServer, World
from tests.helpers.load import verify_load
from tests.helpers.services import own_redis_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_a_shard_left_without_replica_refuses_until_a_new_node_joins_it(pg_url: str) -> None:
    with own_redis_cluster() as cluster:
        seed = cluster.masters()[0]
        with EcardServer(db=pg_url, redis=seed.url) as server:
            world = World.seed(server.target, cards=4)
            load = verify_load(world, callers=4).start()
            try:
                load.wait_for(100, outcome="REASON_OK", timeout=60)
                before = {n.port for n in cluster.masters()}
                victim = next(n for n in cluster.masters() if n is not seed)
                down = time.monotonic()
                victim.stop()  # SIGKILL, and it never comes back
                cluster.wait_promoted()
                orphan = next(n for n in cluster.masters() if n.port not in before)
                promoted = time.monotonic()
                time.sleep(2.0)  # the promoted master alone: its slots keep refusing
                load.wait_for(20, outcome="UNAVAILABLE", since=promoted + 0.5, timeout=20)
                attached = time.monotonic()
                newcomer = cluster.add_replica(orphan)
                cluster.wait_synced()
                synced = time.monotonic()
                load.wait_for(100, outcome="REASON_OK", since=synced + 1.0, timeout=60)
            finally:
                load.stop()
            answers = load.answers
            outcomes = collections.Counter(a.outcome for a in answers)
            print(f"\nredis cluster, a master lost for good: {len(answers)} verifies, outcomes {dict(outcomes)}; "
                  f"promoted {promoted - down:.2f} s after the kill, a new replica attached at {attached - down:.2f} s "
                  f"and synced at {synced - down:.2f} s")
            odd = [a.detail for a in answers if a.outcome not in {"REASON_OK", "UNAVAILABLE", "REASON_REPLAYED"}]
            assert odd == [], (odd, server.logs()[-3000:])
            assert not victim.alive and newcomer.alive
            # between the promotion and the new replica: the orphan's slots refuse, saying why, the others accept
            alone = [a for a in answers if promoted + 1.5 < a.sent and a.at < attached]
            assert {a.outcome for a in alone} == {"REASON_OK", "UNAVAILABLE"}, collections.Counter(
                a.outcome for a in alone)
            refusals = collections.Counter(a.detail.split(":")[0] for a in alone if a.outcome == "UNAVAILABLE")
            assert set(refusals) == {"NONCE_STORE_UNREPLICATED"}, refusals
            # healed without a restart, the dead node still dead: nothing refused once the new replica synced
            late = [a for a in answers if a.sent > synced + 0.5]
            assert len(late) >= 50 and {a.outcome for a in late} == {"REASON_OK"}, collections.Counter(
                a.outcome for a in late)
            assert server.process is not None and server.process.poll() is None
            accepted = [a.key for a in answers if a.outcome == "REASON_OK"]
            with world.pharmacy() as pos:
                again = collections.Counter(pos.verify(token, purpose=Purpose.IDENTITY).reason for token in accepted)
            assert again == {Reason.REPLAYED: len(accepted)}, again
