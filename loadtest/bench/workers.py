"""`make bench-workers`: Verify with `ecard serve --workers N` beside one worker, on the same shared store.

`--workers` above 1 needs the shared deployment (PostgreSQL for the store, Redis for single use and
cache invalidation), so both runs use it: a fresh PostgreSQL database and a fresh Redis namespace each.
The load generator (this process, asyncio) runs on the same machine; its CPU share is reported beside
the rates, because on a small machine it decides how much is left for the workers.

    python -m loadtest.bench.workers [--workers 2] [--seconds 6] [--out reports/bench_workers.json]
                                     [--redis-cluster]

`--redis-cluster` (`make bench-workers REDIS_CLUSTER=1`) repeats each run on a Redis Cluster of its own
(loadtest/rig/redis_cluster.py: 3 masters, 3 replicas on loopback), so `cluster_verify_rate_wN` stands
beside `verify_rate_wN` (the single Redis) in the same run; `verify_cluster_vs_single_wN` is the ratio.

How to read it: `verify_rate_wN / verify_rate_w1` is the scaling. A process of ecard is bound to about
one core by Python's GIL, so N workers can use N cores; on a 2-core machine where the load generator
itself needs most of a core, there is hardly a second core to give (the ratio stays near 1). The
figures `server_cores` and `client_cores` say where the CPU went.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecard.testing import EcardServer, World
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from loadtest.bench.limits import capacity_config
from loadtest.bench.run import closed_loop, cpu_model, mint_tokens

PG_ADMIN_URL = os.environ.get("ECARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ECARD_TEST_REDIS", "redis://127.0.0.1:6379/0")
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its children that are still running (the workers)."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


class FreshDatabase:
    """A new PostgreSQL database for one run, dropped afterwards."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"ecard_bench_{uuid.uuid4().hex[:10]}"
        self.url = f"{admin_url.rsplit('/', 1)[0]}/{self.name}"

    def __enter__(self) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        return self.url

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def measure(target: str, world: World, tokens: list[str], pid: int, seconds: float,
                  concurrency: int = 64, rounds: int = 3) -> dict[str, float]:
    channels = [grpc.aio.insecure_channel(target) for _ in range(2)]
    health = [health_pb2_grpc.HealthStub(c) for c in channels]
    verifier = [verifier_pb2_grpc.VerifierStub(c) for c in channels]
    metadata = (("x-ecard-principal", f"merchant:{world.pharmacy_id}"),)
    supply = iter(tokens)
    ping = health_pb2.HealthCheckRequest()

    async def health_call(i: int) -> int:
        await health[i % 2].Check(ping, timeout=10)
        return 0

    async def verify_call(i: int) -> int:
        request = verifier_pb2.VerifyRequest(token=next(supply), purpose=t.PURPOSE_IDENTITY,
                                             request_id=f"b{i}")  # as the SDK sends every Verify
        answer = await verifier[i % 2].Verify(request, metadata=metadata, timeout=10)
        return int(answer.reason != t.REASON_OK)

    try:
        await closed_loop(verify_call, concurrency=16, seconds=1.0, limit=10**9)  # warm every worker's caches
        best: dict[str, float] = {"health_rate": 0.0, "verify_rate": 0.0}
        unexpected = 0
        for _ in range(rounds):
            h = await closed_loop(health_call, concurrency=concurrency, seconds=seconds / rounds, limit=10**9)
            server0, client0, wall0 = cpu_seconds(pid), time.process_time(), time.monotonic()
            v = await closed_loop(verify_call, concurrency=concurrency, seconds=seconds / rounds, limit=10**9)
            wall = time.monotonic() - wall0
            unexpected += v.unexpected
            best["health_rate"] = max(best["health_rate"], h.rate)
            if v.rate > best["verify_rate"]:
                best.update(verify_rate=v.rate, verify_p99_ms=v.percentile_ms(0.99),
                            server_cores=(cpu_seconds(pid) - server0) / wall,
                            client_cores=(time.process_time() - client0) / wall)
        best["verify_unexpected"] = unexpected
        return best
    finally:
        for channel in channels:
            await channel.close()


def run_one(workers: int, seconds: float, redis_url: str = REDIS_URL) -> dict[str, float]:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with FreshDatabase(PG_ADMIN_URL) as db:
        config = Path(f"/tmp/{namespace}.toml")
        capacity_config(config, f'redis_namespace = "{namespace}"\n')
        try:
            serve_args = ["--workers", str(workers), "--config", str(config)]
            with EcardServer(db=db, redis=redis_url, extra_args=serve_args) as server:
                world = World.seed(server.target, cards=200, prefix=namespace)
                time.sleep(1.5)  # change notices reach every worker within a second
                tokens = mint_tokens(world, world.ecard_ids, int(seconds * 6000) + 20_000)
                assert server.process is not None
                return asyncio.run(measure(server.target, world, tokens, server.process.pid, seconds))
        finally:
            config.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.workers", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", default="reports/bench_workers.json")
    parser.add_argument("--redis-cluster", action="store_true", help="each run again on a Redis Cluster of its own")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, {cpu_model()}", "store": "postgresql+redis"}
    for n in sorted({1, args.workers}):
        for key, value in run_one(n, args.seconds).items():
            figures[f"{key}_w{n}"] = value
    n = args.workers
    figures[f"verify_scaling_w{n}"] = figures[f"verify_rate_w{n}"] / figures["verify_rate_w1"]
    if args.redis_cluster:
        from loadtest.rig.redis_cluster import redis_cluster

        with redis_cluster() as cluster:
            for w in sorted({1, n}):
                for key, value in run_one(w, args.seconds, cluster.url()).items():
                    figures[f"cluster_{key}_w{w}"] = value
                single, clustered = figures[f"verify_rate_w{w}"], figures[f"cluster_verify_rate_w{w}"]
                figures[f"verify_cluster_vs_single_w{w}"] = clustered / single
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"{key:28s} {shown:>16s}")
    print(f"\nwritten to {out}")
    unexpected = sum(v for k, v in figures.items() if "verify_unexpected" in k)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
