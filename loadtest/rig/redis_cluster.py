"""A throwaway Redis Cluster on loopback: `masters` masters, each with one replica, as redis-server
processes on free ports (no persistence, `cluster-node-timeout` 1000 ms, cluster bus on a free port of
its own), joined by `redis-cli --cluster create`. Removed by `close` (also on a failed start).
`add_replica` joins one more node as a master's replica, as an operator would after losing a node.
RuntimeError when it cannot be started (redis-server or redis-cli missing, no agreement).
Used by tests/cluster/test_redis_cluster_failover.py and `python -m loadtest.bench.workers --redis-cluster`."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator

from ecard.testing import free_port
from loadtest.rig.redis_server import RedisServer, wait_for


class RedisNode(RedisServer):
    """One redis-server of the cluster (cluster bus on a free port of its own, not port + 10000, which may
    not exist); `stop` is SIGKILL, `start` brings it back on the same port and folder (its nodes.conf:
    it rejoins the cluster it knew)."""

    def __init__(self) -> None:
        self.bus_port = free_port()
        super().__init__("--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                         "--cluster-config-file", "nodes.conf", "--cluster-port", str(self.bus_port))


def _redis_cli() -> str:
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli is not installed")
    return cli


class RedisClusterRig:
    def __init__(self, masters: int = 3) -> None:
        self.size = masters
        self.nodes: list[RedisNode] = []
        try:
            for _ in range(2 * masters):
                self.nodes.append(RedisNode())
            subprocess.run([_redis_cli(), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                            "--cluster-replicas", "1", "--cluster-yes"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
            self.wait_ok()
            self.wait_synced()
        except BaseException:
            self.close()
            raise

    def url(self, node: int = 0) -> str:
        return self.nodes[node].url

    def masters(self) -> list[RedisNode]:
        return [n for n in self.nodes if n.alive and n.client().info("replication")["role"] == "master"]

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node says cluster_state:ok."""
        wait_for(lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in self.nodes if n.alive),
               "the Redis Cluster did not reach cluster_state:ok", timeout)

    def wait_synced(self, timeout: float = 30) -> None:
        """Until every live master has a replica whose link to it is up."""
        def synced() -> bool:
            masters = self.masters()
            return bool(masters) and all(
                n.client().info("replication").get("slave0", {}).get("state") == "online" for n in masters)
        wait_for(synced, "the Redis Cluster's replicas did not come in sync", timeout)

    def wait_promoted(self, timeout: float = 30) -> None:
        """Until as many live nodes are masters as at the start (a dead master's replica was promoted)."""
        wait_for(lambda: len(self.masters()) >= self.size, "no replica was promoted", timeout)
        self.wait_ok(timeout)

    def add_replica(self, master: RedisNode) -> RedisNode:
        """A new redis-server joined as `master`'s replica (`redis-cli --cluster add-node --cluster-slave
        --cluster-master-id`), as an operator attaches one to a master left without (docs/operations.md)."""
        node = RedisNode()
        self.nodes.append(node)  # closed with the others from now on, whatever happens next
        master_id = master.client().execute_command("CLUSTER", "MYID")
        subprocess.run([_redis_cli(), "--cluster", "add-node", f"127.0.0.1:{node.port}", f"127.0.0.1:{master.port}",
                        "--cluster-slave", "--cluster-master-id", master_id.decode()],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.close()


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[RedisClusterRig]:
    rig = RedisClusterRig(masters)
    try:
        yield rig
    finally:
        rig.close()
