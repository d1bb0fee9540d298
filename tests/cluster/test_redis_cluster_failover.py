"""`ecard serve --redis` on a real Redis Cluster (3 masters, 3 replicas, the test's own redis-server
processes), with one master killed (SIGKILL) under a Verify load: nothing but OK, UNAVAILABLE or
REPLAYED is answered; the dead master's slots answer UNAVAILABLE while it is gone (every consumption
waits for a replica's acknowledgement, so a promoted replica knows every nonce that was accepted); the
cluster promotes its replica; once the killed node rejoins (as the new master's replica) ecard accepts
on every slot again without a restart; and every accepted token, verified again, is REPLAYED."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from ecard import Purpose, Reason
from ecard.testing import EcardServer, World
from tests.helpers.load import verify_load
from tests.helpers.services import own_redis_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_a_master_killed_under_verify_load_fails_closed_and_heals(pg_url: str) -> None:
    with own_redis_cluster() as cluster:
        seed = cluster.masters()[0]
        with EcardServer(db=pg_url, redis=seed.url) as server:
            world = World.seed(server.target, cards=4)
            load = verify_load(world, callers=4).start()
            try:
                load.wait_for(100, outcome="REASON_OK", timeout=60)
                victim = next(n for n in cluster.masters() if n is not seed)
                down = time.monotonic()
                victim.stop()  # SIGKILL
                load.wait_for(10, outcome="UNAVAILABLE", since=down, timeout=20)
                cluster.wait_promoted()
                promoted = time.monotonic()
                victim.start()  # rejoins empty, as the promoted master's replica
                cluster.wait_ok()
                cluster.wait_synced()
                rejoined = time.monotonic()
                settled = time.monotonic()
                time.sleep(1.0)
                load.wait_for(100, outcome="REASON_OK", since=settled + 1.0, timeout=60)
            finally:
                load.stop()
            answers = load.answers
            outcomes = collections.Counter(a.outcome for a in answers)
            unavailable = [a for a in answers if a.outcome == "UNAVAILABLE"]
            print(f"\nredis cluster failover: {len(answers)} verifies, outcomes {dict(outcomes)}, "
                  f"promoted {promoted - down:.2f} s after the kill, rejoined and synced {rejoined - down:.2f} s, "
                  f"last UNAVAILABLE {max(a.at for a in unavailable) - down:.2f} s after the kill")
            odd = [a.detail for a in answers if a.outcome not in {"REASON_OK", "UNAVAILABLE", "REASON_REPLAYED"}]
            errors = [line for line in server.logs().splitlines() if '"level": "error"' in line]
            assert odd == [], (odd, errors[-5:])  # never INTERNAL (the log's error lines carry the traceback)
            assert [a for a in unavailable if a.at < down] == []
            # the other masters' slots kept accepting while the victim was gone
            assert any(a.outcome == "REASON_OK" and down + 0.1 < a.at < promoted for a in answers)
            # healed without a restart: nothing refused once the victim's replica had synced
            late = [a for a in answers if a.sent > settled + 0.5]
            assert len(late) >= 50 and {a.outcome for a in late} == {"REASON_OK"}, collections.Counter(
                a.outcome for a in late)
            assert server.process is not None and server.process.poll() is None
            accepted = [a.key for a in answers if a.outcome == "REASON_OK"]
            with world.pharmacy() as pos:
                again = collections.Counter(pos.verify(token, purpose=Purpose.IDENTITY).reason for token in accepted)
            assert again == {Reason.REPLAYED: len(accepted)}, again


def test_a_nonce_no_replica_acknowledged_is_refused_and_stays_consumed(tmp_path: Path) -> None:
    """A replica stopped (SIGSTOP): a nonce of its master's slots reaches the master but not the replica,
    so its consumption is UNAVAILABLE (the master could die with it), never fresh; once the replica
    answers again, the same nonce is used; other shards answer all along."""
    import os
    import signal

    import redis

    from ecard.errors import Unavailable
    from ecard_server.storage.redis_nonces import RedisNonceStore
    from ecard_server.storage.sqlite import SqliteStore

    with own_redis_cluster() as cluster:
        witness = SqliteStore(str(tmp_path / "witness.db"))
        store = RedisNonceStore.from_url(cluster.url(), witness=witness, namespace="rc-wait")
        try:
            client = redis.cluster.RedisCluster.from_url(cluster.url())
            keys = [f"bank\x00nonce-{i}".encode() for i in range(64)]
            victim = cluster.masters()[0]
            slots_node = {k: client.get_node_from_key(store._keys(k)[0]).port for k in keys}
            mine = [k for k in keys if slots_node[k] == victim.port]
            others = [k for k in keys if slots_node[k] != victim.port]
            assert mine and others
            replica_port = int(redis.Redis(port=victim.port).info("replication")["slave0"]["port"])
            replica = next(n for n in cluster.nodes if n.port == replica_port)
            assert replica.process is not None
            expires = time.time() + 60
            os.kill(replica.process.pid, signal.SIGSTOP)
            try:
                with pytest.raises(Unavailable, match="no replica acknowledged"):
                    store.consume(mine[0], expires)
                assert store.consume(others[0], expires) is True
            finally:
                os.kill(replica.process.pid, signal.SIGCONT)
            cluster.wait_synced()
            assert store.consume(mine[0], expires) is False  # it reached the master: used
            assert store.consume(mine[1], expires) is True
            client.close()
        finally:
            store.close()
            witness.close()


def test_the_change_bus_reaches_a_process_seeded_on_another_node() -> None:
    from ecard_server.storage.redis_bus import RedisChangeBus

    with own_redis_cluster() as cluster:
        first = RedisChangeBus.from_url(cluster.url(0), namespace="rc-bus")
        second = RedisChangeBus.from_url(cluster.url(3), namespace="rc-bus")
        try:
            assert first.connected.wait(5) and second.connected.wait(5)
            heard: list[tuple[str, str]] = []
            second.subscribe(lambda kind, key: heard.append((kind, key)))
            first.publish("card", "c1")
            deadline = time.monotonic() + 5
            while ("card", "c1") not in heard and time.monotonic() < deadline:
                time.sleep(0.02)
            assert ("card", "c1") in heard
        finally:
            first.close()
            second.close()
