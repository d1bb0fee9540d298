"""A throwaway Redis Cluster on loopback: `masters` masters, each with one replica, as redis-server
processes on free ports (no persistence, `cluster-node-timeout` 1000 ms, cluster bus on a free port of
its own), joined by `redis-cli --cluster create`. Removed by `close` (also on a failed start).
RuntimeError when it cannot be started (redis-server or redis-cli missing, no agreement).
Used by tests/cluster/test_redis_cluster_failover.py and `python -m loadtest.bench.workers --redis-cluster`."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator

import redis

from ecard.testing import free_port


class RedisNode:
    """One redis-server of the cluster; `stop` is SIGKILL, `start` brings it back on the same port
    and folder (its nodes.conf: it rejoins the cluster it knew)."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="ecard-rcluster-")
        self.port = free_port()
        self.bus_port = free_port()  # not port + 10000, which may not exist
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.folder, "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
             "--cluster-config-file", "nodes.conf", "--cluster-port", str(self.bus_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _until(lambda: bool(self.client().ping()), f"redis-server did not start on port {self.port}", 10,
               lambda: not self.alive)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _until(check: Callable[[], bool], failure: str, timeout: float, dead: Callable[[], bool] = lambda: False) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        if time.monotonic() > deadline or dead():
            raise RuntimeError(failure)
        time.sleep(0.05)


class RedisClusterRig:
    def __init__(self, masters: int = 3) -> None:
        self.size = masters
        self.nodes: list[RedisNode] = []
        try:
            for _ in range(2 * masters):
                self.nodes.append(RedisNode())
            cli = shutil.which("redis-cli")
            if cli is None:
                raise RuntimeError("redis-cli is not installed")
            subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
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
        _until(lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in self.nodes if n.alive),
               "the Redis Cluster did not reach cluster_state:ok", timeout)

    def wait_synced(self, timeout: float = 30) -> None:
        """Until every live master has a replica whose link to it is up."""
        def synced() -> bool:
            masters = self.masters()
            return bool(masters) and all(
                n.client().info("replication").get("slave0", {}).get("state") == "online" for n in masters)
        _until(synced, "the Redis Cluster's replicas did not come in sync", timeout)

    def wait_promoted(self, timeout: float = 30) -> None:
        """Until as many live nodes are masters as at the start (a dead master's replica was promoted)."""
        _until(lambda: len(self.masters()) >= self.size, "no replica was promoted", timeout)
        self.wait_ok(timeout)

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
