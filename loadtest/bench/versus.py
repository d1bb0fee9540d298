"""`make bench`, second part: ecard's Verify against the servers a team could write instead (bench.peers).

Four servers run side by side, each pinned to the same core, and this process (the client) to the
other one:

    simple          the simple peer: sync grpcio, PyJWT EdDSA, SQLite, an in-memory replay set
    ecard_embedded  `ecard serve` on SQLite, nonces in memory
    shared          the competent shared peer: sync grpcio, PyNaCl, PostgreSQL behind an LRU, Redis SET NX EXAT
    ecard_shared    `ecard serve` on PostgreSQL + Redis, one process

The same asyncio client (16 concurrent unary Verify calls, as the SDK sends them: a request_id, the
merchant's principal) drives each in turn for a few seconds; the servers alternate in rounds (the
order turns each round), so a neighbour's burst of CPU on a shared machine hits all of them alike.
Figures are over all rounds: calls / seconds, and the percentiles of every call's latency.

    python -m loadtest.bench.versus [--rounds 3] [--seconds 3] [--out reports/bench_versus.json]

Goals (exit 1 when one fails): ecard_embedded >= 1.2 x simple and ecard_shared >= 1.2 x shared in
Verify/s, and each ecard's p99 no worse than its peer's. Every server's CPU share and the machine's
load (the CPU that none of these processes took) are printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc.aio

from ecard import from_grpc_error
from ecard.testing import EcardServer, World, free_port, wait_healthy
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from loadtest.bench import peers
from loadtest.bench.limits import capacity_config
from loadtest.bench.run import closed_loop, cpu_model, mint_tokens
from loadtest.bench.workers import PG_ADMIN_URL, REDIS_URL, FreshDatabase, cpu_seconds

SERVERS = ("simple", "ecard_embedded", "shared", "ecard_shared")
PAIRS = (("ecard_embedded", "simple"), ("ecard_shared", "shared"))
RATE_GOAL = 1.2
CONCURRENCY = 16
CARDS = 200
TOKENS_PER_SECOND = 6_000  # more than any of them answers on one core of this hardware


@dataclass
class Target:
    name: str
    address: str
    pid: int
    metadata: tuple[tuple[str, str], ...]
    tokens: Iterator[str]
    calls: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    unexpected: int = 0
    unexpected_answers: collections.Counter[str] = field(default_factory=collections.Counter)
    """What the unexpected answers were: a Verify reason, or a status code and its ErrorInfo reason."""
    latencies: list[float] = field(default_factory=list)
    round_rates: list[float] = field(default_factory=list)


# -- tokens (the phone's work, done before any clock starts) -------------------------------------------
def _jwt_chunk(args: tuple[bytes, list[str], int]) -> list[str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed, ids, count = args
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return [peers.jwt_token(key, ids[i % len(ids)]) for i in range(count)]


def _compact_chunk(args: tuple[bytes, list[str], int]) -> list[str]:
    import nacl.signing

    seed, ids, count = args
    key = nacl.signing.SigningKey(seed)
    return [peers.compact_token(key, ids[i % len(ids)]) for i in range(count)]


def mint_peer_tokens(chunk: Callable[[tuple[bytes, list[str], int]], list[str]], seed: bytes, ids: list[str],
                     count: int) -> list[str]:
    workers = len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(chunk, [(seed, ids[n::workers] or ids, -(-count // workers)) for n in range(workers)]))
    return [token for round_ in zip(*parts, strict=True) for token in round_]


def peer_cards(prefix: str) -> list[peers.Card]:
    return [(f"E{prefix}{n:08d}", t.CARD_STATUS_ACTIVE, "张*", "330200") for n in range(CARDS)]


# -- servers -------------------------------------------------------------------------------------------
class PeerProcess:
    def __init__(self, args: list[str], log: Path) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "loadtest.bench.peers", *args, "--listen", self.target]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PeerProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log)
        try:
            wait_for_port(self.target, self.process)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for_port(target: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    import grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"peer on {target} exited with {process.returncode}")
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"peer on {target} not ready in {timeout} s") from None


class Profiler:
    """py-spy sampling one server (at 250 Hz, native frames off, idle threads left out) for the whole run;
    collapsed stacks (flamegraph.pl's input) written to DIR/<server>.txt when it stops."""

    def __init__(self, target: Target, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(target.pid),
                        "--rate", "250", "--format", "raw", "--output", str(folder / f"{target.name}.txt")]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def delete_namespace(namespace: str, url: str = REDIS_URL) -> None:
    """Every key of `namespace` (a server's redis_namespace) in the Redis at `url`."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for keys in _chunks(client.scan_iter(match=f"{namespace}:*", count=1000), 1000):
            client.delete(*keys)
    finally:
        client.close()


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- the load --------------------------------------------------------------------------------------------
async def drive(targets: list[Target], rounds: int, seconds: float) -> None:
    channels = {target.name: [grpc.aio.insecure_channel(target.address) for _ in range(2)] for target in targets}
    try:
        for target in targets:
            stubs = [verifier_pb2_grpc.VerifierStub(c) for c in channels[target.name]]
            call = verify_call(target, stubs)
            warm_up = await closed_loop(call, concurrency=CONCURRENCY, seconds=1.0, limit=10**9)  # connections, caches
            target.unexpected += warm_up.unexpected  # untimed, but an unexpected answer all the same
        for r in range(rounds):
            for target in targets[r % len(targets):] + targets[:r % len(targets)]:
                stubs = [verifier_pb2_grpc.VerifierStub(c) for c in channels[target.name]]
                cpu0 = cpu_seconds(target.pid)
                phase = await closed_loop(verify_call(target, stubs), concurrency=CONCURRENCY, seconds=seconds,
                                          limit=10**9)
                target.cpu += cpu_seconds(target.pid) - cpu0
                target.calls += phase.calls
                target.seconds += phase.seconds
                target.latencies += phase.latencies
                target.unexpected += phase.unexpected
                target.round_rates.append(phase.rate)
    finally:
        for pair in channels.values():
            for channel in pair:
                await channel.close()


def verify_call(target: Target, stubs: list[Any]) -> Callable[[int], Any]:
    tokens, metadata, purpose = target.tokens, target.metadata, t.PURPOSE_IDENTITY

    async def call(i: int) -> int:
        request = verifier_pb2.VerifyRequest(token=next(tokens), purpose=purpose, request_id=f"b{i}")
        try:
            answer = await stubs[i & 1].Verify(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            said = from_grpc_error(error).reason or ""
            target.unexpected_answers[f"{error.code().name} {said}".strip()] += 1
            return 1
        if answer.reason != t.REASON_OK:
            target.unexpected_answers[t.Reason.Name(answer.reason)] += 1
            return 1
        return 0

    return call


def percentile_ms(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return 1000 * ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


# -- the run -------------------------------------------------------------------------------------------
def run(rounds: int, seconds: float, out: Path, profile: Path | None = None) -> int:
    cores = sorted(os.sched_getaffinity(0))
    pinned = len(cores) >= 2
    server_core, client_core = (cores[0], cores[1]) if pinned else (cores[0], cores[0])
    budget = int(TOKENS_PER_SECOND * (rounds * seconds + 1.5))
    figures: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, {cpu_model()}",
        "pinning": f"servers on core {server_core}, client on core {client_core}" if pinned else "none (one core)",
        "rounds": rounds, "seconds_per_phase": seconds, "concurrency": CONCURRENCY,
        "load_average_before": os.getloadavg()[0],
    }
    tag = uuid.uuid4().hex[:8]
    namespace_peer, namespace_ecard = f"benchpeer{tag}", f"benchvs{tag}"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = os.urandom(32)
    public_hex = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    cards = peer_cards(tag)
    ids = [card[0] for card in cards]
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="ecard-versus-") as tmp:
        stack.callback(delete_namespace, namespace_peer)
        stack.callback(delete_namespace, namespace_ecard)
        peer_db = stack.enter_context(FreshDatabase(PG_ADMIN_URL))
        ecard_db = stack.enter_context(FreshDatabase(PG_ADMIN_URL))
        sqlite_path = f"{tmp}/peer.db"
        peers.write_sqlite_cards(sqlite_path, cards)
        peers.write_pg_cards(peer_db, cards)
        config = Path(tmp) / "shared.toml"
        capacity_config(config, f'redis_namespace = "{namespace_ecard}"\n')
        mine = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {server_core})  # every server started below inherits its core
        try:
            simple = stack.enter_context(PeerProcess(
                ["simple", "--sqlite", sqlite_path, "--public-key", public_hex], Path(tmp) / "simple.log"))
            shared = stack.enter_context(PeerProcess(
                ["shared", "--pg", peer_db, "--redis", REDIS_URL, "--namespace", namespace_peer,
                 "--public-key", public_hex], Path(tmp) / "shared.log"))
            embedded = stack.enter_context(EcardServer(extra_args=[
                "--config", capacity_config(Path(tmp) / "embedded.toml")]))
            ecard_shared = stack.enter_context(
                EcardServer(db=ecard_db, redis=REDIS_URL, extra_args=["--config", str(config)]))
        finally:
            os.sched_setaffinity(0, mine)
        worlds = {"ecard_embedded": World.seed(embedded.target, cards=CARDS, prefix=f"e{tag}"),
                  "ecard_shared": World.seed(ecard_shared.target, cards=CARDS, prefix=f"s{tag}")}
        wait_healthy(ecard_shared.target, 30, ecard_shared.process)
        time.sleep(1.5)  # change notices reach the shared server's caches
        tokens = {
            "simple": mint_peer_tokens(_jwt_chunk, seed, ids, budget),
            "shared": mint_peer_tokens(_compact_chunk, seed, ids, budget),
            **{name: mint_tokens(world, world.ecard_ids, budget) for name, world in worlds.items()},
        }
        peer_metadata = (("x-ecard-principal", "merchant:peer"),)
        processes = {"simple": simple.process, "shared": shared.process, "ecard_embedded": embedded.process,
                     "ecard_shared": ecard_shared.process}
        targets = [
            Target(name, {"simple": simple.target, "shared": shared.target, "ecard_embedded": embedded.target,
                          "ecard_shared": ecard_shared.target}[name],
                   processes[name].pid,  # type: ignore[union-attr]
                   (("x-ecard-principal", f"merchant:{worlds[name].pharmacy_id}"),) if name in worlds
                   else peer_metadata,
                   iter(tokens[name]))
            for name in SERVERS
        ]
        os.sched_setaffinity(0, {client_core})  # py-spy, when profiling, inherits the client's core
        if profile is not None:
            for target in targets:
                stack.enter_context(Profiler(target, profile))
        busy0, total0 = machine_busy()
        client0 = time.process_time()
        try:
            asyncio.run(drive(targets, rounds, seconds))
        finally:
            os.sched_setaffinity(0, mine)
        busy1, total1 = machine_busy()
        client_cpu = time.process_time() - client0
    measured = sum(target.seconds for target in targets)
    ours = client_cpu + sum(target.cpu for target in targets)
    figures["machine_cores_busy"] = (busy1 - busy0) / ((total1 - total0) / (os.cpu_count() or 1))
    figures["others_cores_busy"] = max(figures["machine_cores_busy"] - ours / measured, 0.0)
    figures["client_cores"] = client_cpu / measured
    figures["load_average_after"] = os.getloadavg()[0]
    for target in targets:
        figures[target.name] = {
            "verify_rate": target.calls / target.seconds,
            "round_rates": [round(rate) for rate in target.round_rates],
            "p50_ms": percentile_ms(target.latencies, 0.50),
            "p99_ms": percentile_ms(target.latencies, 0.99),
            "server_cores": target.cpu / target.seconds,
            "unexpected": target.unexpected,
        }
    held: dict[str, bool] = {}
    for ours_name, peer_name in PAIRS:
        ratio = figures[ours_name]["verify_rate"] / figures[peer_name]["verify_rate"]
        figures[f"{ours_name}_vs_{peer_name}"] = ratio
        held[f"{ours_name}_vs_{peer_name} >= {RATE_GOAL}"] = ratio >= RATE_GOAL
        held[f"{ours_name} p99 <= {peer_name} p99"] = figures[ours_name]["p99_ms"] <= figures[peer_name]["p99_ms"]
    figures["goals"] = held
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    print(table(figures, held))
    print(f"\nwritten to {out}")
    failed = [name for name, ok in held.items() if not ok]
    if failed or any(figures[name]["unexpected"] for name in SERVERS):
        print(f"bench versus: goals not held: {'; '.join(failed) or 'unexpected answers'}", file=sys.stderr)
        return 1
    return 0


def table(figures: dict[str, Any], held: dict[str, bool]) -> str:
    f = figures
    rows = [f"{f['machine']}; {f['pinning']}; {f['rounds']} rounds of {f['seconds_per_phase']} s"
            f" per server, {f['concurrency']} calls in flight",
            f"machine busy {f['machine_cores_busy']:.2f} cores, of which others {f['others_cores_busy']:.2f};"
            f" client {figures['client_cores']:.2f}; load average {figures['load_average_before']:.1f} before,"
            f" {figures['load_average_after']:.1f} after", "",
            f"{'server':16s} {'Verify/s':>9s} {'rounds':>20s} {'p50 ms':>7s} {'p99 ms':>7s} {'cores':>6s}"]
    for name in SERVERS:
        f = figures[name]
        rounds = "–".join(f"{r:,}" for r in (min(f["round_rates"]), max(f["round_rates"])))
        rows.append(f"{name:16s} {f['verify_rate']:>9,.0f} {rounds:>20s} {f['p50_ms']:>7.1f} {f['p99_ms']:>7.1f}"
                    f" {f['server_cores']:>6.2f}")
    rows.append("")
    for ours_name, peer_name in PAIRS:
        rows.append(f"{ours_name} / {peer_name}: {figures[f'{ours_name}_vs_{peer_name}']:.2f} x")
    rows += [f"  {name}: {'yes' if ok else 'NO'}" for name, ok in held.items()]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.versus", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each server's phase in a round")
    parser.add_argument("--out", default="reports/bench_versus.json")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy samples each server while it is measured: DIR/<server>.txt (collapsed stacks)")
    args = parser.parse_args(argv)
    return run(args.rounds, args.seconds, Path(args.out), Path(args.profile) if args.profile else None)


if __name__ == "__main__":
    sys.exit(main())
