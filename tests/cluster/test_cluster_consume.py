"""`python -m loadtest.measure.cluster_consume` (the figures of docs/cluster.md) times a consumption on a
Redis Cluster of its own beside one Redis: the WAIT for a replica is a second hop on top of the script's
round trip, the cluster's CPU per consumption is counted, and it leaves no key behind."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.serial]  # compares two latencies: alone


def test_cluster_consume_times_the_wait_hop_and_leaves_nothing_behind(redis_url: str) -> None:
    import redis

    from loadtest.measure import cluster_consume

    figures = cluster_consume.measure(200, 1)
    assert figures["single_us"] > 0 and 0 < figures["master_us"] < figures["master_wait_us"]
    assert figures["master_wait_cluster_cpu_us"] > 0 and figures["routed_client_cpu_us"] > 0
    assert not list(redis.Redis.from_url(redis_url).scan_iter(match="ccbench:*", count=10000))
