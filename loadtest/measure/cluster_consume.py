"""What one nonce consumption costs on a Redis Cluster beside one Redis (docs/cluster.md: why Verify/s on
the cluster is below one Redis's in `make bench-workers REDIS_CLUSTER=1`).

    python -m loadtest.measure.cluster_consume [--count 3000] [--rounds 3] [--out reports/cluster_consume.json]

Starts a Redis Cluster of its own (loadtest/rig/redis_cluster.py: 3 masters, 3 replicas on loopback) and
times, one call after another, the round trips a consumption makes, as the server makes them (a Lua
script doing `SET key 1 NX EXAT`, keys of a namespace of its own):

    single        the script on the machine's Redis (one round trip; the server group-commits these)
    master        the same script on one master of the cluster, on a direct connection
    master_wait   the script and `WAIT 1 500` in one pipeline on that connection: what the server sends
                  per consumption on a cluster (the replica's acknowledgement is a second hop inside it)
    routed        the same through redis-py's RedisCluster as the server does it (the key's slot, its
                  master's pooled client, a pipeline of script and WAIT): adds the routing's Python
    thread_hop    `asyncio.to_thread` of nothing: the server runs each cluster consumption on a thread

Rounds alternate them; each figure is the best round's median, in microseconds, with this process's CPU
per call (`_client_cpu_us`) and the cluster's redis-server CPU per consumption (`_cluster_cpu_us`: the
master, its replica, the rest).
Deletes its keys afterwards. A client of Redis, as the rest of loadtest: it imports no server code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.cluster

from loadtest.bench.workers import REDIS_URL, cpu_seconds
from loadtest.rig.redis_cluster import redis_cluster

SCRIPT = "if redis.call('SET', KEYS[1], '1', 'NX', 'EXAT', ARGV[1]) then return 1 end return 0"


def timed(call: Callable[[int], Any], count: int) -> list[float]:
    """Microseconds of each of `count` calls, one after another."""
    spans = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        spans.append((time.perf_counter() - start) * 1e6)
    return spans


def measure(count: int, rounds: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    expiry = int(time.time()) + 300
    single = redis.Redis.from_url(REDIS_URL)
    figures: dict[str, Any] = {"count": count, "rounds": rounds, "load_average_before": os.getloadavg()[0]}
    try:
        with redis_cluster() as cluster:
            master = cluster.masters()[0]
            node = master.client()
            # every key in one slot of this master: a hash tag that it serves
            slot_tag = next(f"cc{tag}{n}" for n in range(100_000) if _served(node, f"cc{tag}{n}"))
            single_script = single.register_script(SCRIPT)
            master_script = node.register_script(SCRIPT)
            pids = [n.process.pid for n in cluster.nodes if n.process is not None]

            def on_single(i: int) -> None:
                single_script(keys=[f"ccbench:{tag}:s{i}:{time.perf_counter_ns()}"], args=[expiry])

            def on_master(i: int) -> None:
                master_script(keys=[f"{{{slot_tag}}}:m{i}:{time.perf_counter_ns()}"], args=[expiry])

            def wait_on(client: redis.Redis, key: str) -> None:
                pipe = client.pipeline(transaction=False)
                master_script(keys=[key], args=[expiry], client=pipe)
                pipe.execute_command("WAIT", 1, 500)
                _, acknowledged = pipe.execute()
                if int(acknowledged) < 1:
                    raise RuntimeError("no replica acknowledged")

            def on_master_wait(i: int) -> None:
                wait_on(node, f"{{{slot_tag}}}:w{i}:{time.perf_counter_ns()}")

            routing = redis.cluster.RedisCluster.from_url(cluster.url())

            def on_routed(i: int) -> None:
                key = f"{{cc{tag}:{i % 64}}}:r{i}:{time.perf_counter_ns()}"
                wait_on(routing.get_redis_connection(routing.get_node_from_key(key)), key)

            async def hops(n: int) -> list[float]:
                spans = []
                for _ in range(n):
                    start = time.perf_counter()
                    await asyncio.to_thread(lambda: None)
                    spans.append((time.perf_counter() - start) * 1e6)
                return spans

            best: dict[str, float] = {}
            cpu: dict[str, tuple[float, float]] = {}
            variants = (("single", on_single), ("master", on_master), ("master_wait", on_master_wait),
                        ("routed", on_routed))
            for _ in range(rounds):
                for name, call in variants:
                    cluster0, mine0 = sum(cpu_seconds(p) for p in pids), time.process_time()
                    median = statistics.median(timed(call, count))
                    mine = (time.process_time() - mine0) / count * 1e6
                    theirs = (sum(cpu_seconds(p) for p in pids) - cluster0) / count * 1e6
                    if median < best.get(name, float("inf")):
                        best[name], cpu[name] = median, (mine, theirs)
                median = statistics.median(asyncio.run(hops(count)))
                best["thread_hop"] = min(median, best.get("thread_hop", float("inf")))
            for name, value in best.items():
                figures[f"{name}_us"] = round(value, 1)
            for name, (mine, theirs) in cpu.items():
                figures[f"{name}_client_cpu_us"] = round(mine, 1)
                if name != "single":
                    figures[f"{name}_cluster_cpu_us"] = round(theirs, 1)
            routing.close()
            node.close()
    finally:
        for keys in _batches(single.scan_iter(match=f"ccbench:{tag}:*", count=1000)):
            single.delete(*keys)
        single.close()
    figures["load_average_after"] = os.getloadavg()[0]
    return figures


def _served(node: redis.Redis, tag: str) -> bool:
    """Whether `node` serves the slot of hash tag `tag` (it answers rather than MOVED)."""
    try:
        node.get(f"{{{tag}}}:probe")
    except redis.ResponseError:
        return False
    return True


def _batches(keys: Any, size: int = 1000) -> Any:
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.measure.cluster_consume",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports/cluster_consume.json"))
    args = parser.parse_args(argv)
    figures = measure(args.count, args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
