"""What counts as "Redis does not answer" (storage.redis_connect.ERRORS): every store on Redis turns it into
UNAVAILABLE (fail closed), so anything the clients raise when Redis cannot answer must be in it, or the
caller gets INTERNAL."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ClusterDownError, MasterDownError, RedisClusterException, SlotNotCoveredError

from ecard_server.storage.redis_connect import ERRORS


@pytest.mark.parametrize("error", [
    # The cluster client, while a failover leaves slots without a master (seen as one INTERNAL answer in
    # tests/cluster/test_redis_cluster_failover.py): not a RedisError.
    SlotNotCoveredError("Slot 4242 is not covered by the cluster."),
    RedisClusterException("Redis Cluster cannot be connected. Please provide at least one reachable node"),
    ClusterDownError("CLUSTERDOWN The cluster is down"),
    MasterDownError("MASTERDOWN Link with MASTER is down"),
    redis.ConnectionError("Connection refused"),
    redis.TimeoutError("Timeout reading from socket"),
    ConnectionResetError(104, "Connection reset by peer"),
])
def test_what_redis_clients_raise_when_redis_cannot_answer_is_unavailable(error: BaseException) -> None:
    assert isinstance(error, ERRORS)
