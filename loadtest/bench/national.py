"""`make bench SCALE=national`: Verify against a national-size cards table, its cache cold, half warm
and warm.

    python -m loadtest.bench.national [--cards 20000000] [--rounds 3] [--seconds 4] [--out reports/bench_national.json]

A fresh PostgreSQL database (on ECARD_BENCH_PG's server, default the machine's) is migrated by
`ecard serve`, seeded with an issuer, its key and a pharmacy through the API, then given `--cards`
cards with their e-cards bound to that issuer, generated in the database (INSERT ... SELECT FROM
generate_series, in chunks; not through the API, which would take hours). One `ecard serve` on it and
the machine's Redis, pinned to one core, with the client on the other, answers three streams of tokens
in alternating rounds (bench.versus's client, 16 calls in flight):

    cold   every token a different card drawn at random from all of them: the card cache misses
    half   one token in two from the hot set, the other as cold
    warm   every token from the hot set (`--hot` cards, well inside `card_cache_size`)

Each figure is Verify/s per server core, p50/p99, and the hit share the server's own counters
(ecard_card_cache_hits_total / misses_total) saw during that stream's rounds; then the server's RSS.
The database is dropped at the end, also on failure.

The server runs with the benchmarks' capacity limits (bench.limits: one merchant flat out, not the
default 1,000 calls/s per principal), and each drive's tokens are minted just before it, on every core,
outside any timed second (no token is more than seconds old when used). Every token is fresh, for an
active card bound to the token's issuer, so any answer but an accept (the warm-ups' included) is a fault:
the run names them (a Verify reason, or a status and its ErrorInfo reason) and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import grpc.aio
import psycopg

from ecard.testing import EcardServer, World, free_port
from ecard.v1 import verifier_pb2_grpc
from loadtest.bench.limits import capacity_config
from loadtest.bench.run import closed_loop, cpu_model, mint_tokens, server_memory_mb
from loadtest.bench.versus import CONCURRENCY, TOKENS_PER_SECOND, Target, drive, percentile_ms, verify_call
from loadtest.bench.workers import PG_ADMIN_URL, REDIS_URL, FreshDatabase

CHUNK = 1_000_000
ACTIVE = 1  # CardStatus.ACTIVE


def generate_cards(url: str, issuer_id: str, cards: int) -> float:
    """`cards` active cards N0000000001.. with e-cards NE0000000001.. bound to `issuer_id`, made by
    PostgreSQL itself; returns the seconds it took (ANALYZE included)."""
    started = time.monotonic()
    now = int(time.time())
    with psycopg.connect(url, autocommit=True) as conn:
        for first in range(1, cards + 1, CHUNK):
            last = min(first + CHUNK - 1, cards)
            conn.execute(
                "INSERT INTO cards (card_no, holder_name, id_hash, region, status, balance_fen, ecard_id, issued_at,"
                " enrolled_at, holder_sealed) SELECT 'N' || lpad(i::text, 10, '0'), '张*',"
                " decode(md5('national' || i::text), 'hex'), '330200', %s, 100000, 'NE' || lpad(i::text, 10, '0'),"
                " %s, %s, TRUE FROM generate_series(%s::bigint, %s::bigint) AS i",
                (ACTIVE, now, now, first, last))
            conn.execute(
                "INSERT INTO ecard_channels (ecard_id, issuer_id, bound_at)"
                " SELECT 'NE' || lpad(i::text, 10, '0'), %s, %s FROM generate_series(%s::bigint, %s::bigint) AS i",
                (issuer_id, now, first, last))
            print(f"  {last:,} cards ({time.monotonic() - started:.0f} s)", flush=True)
        conn.execute("ANALYZE cards")
        conn.execute("ANALYZE ecard_channels")
    return time.monotonic() - started


def ecard_id(i: int) -> str:
    return f"NE{i:010d}"


def cache_counts(metrics_port: int) -> tuple[float, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith(("ecard_card_cache_hits_total", "ecard_card_cache_misses_total"))}
    return values.get("ecard_card_cache_hits_total", 0.0), values.get("ecard_card_cache_misses_total", 0.0)


async def every_token_once(target: Target, count: int) -> int:
    """Verifies `count` tokens of `target` (the hot set's cards, into the cache), however long it takes;
    returns how many answers were not an accept."""
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        phase = await closed_loop(verify_call(target, [stub, stub]), concurrency=CONCURRENCY, seconds=3600,
                                  limit=count)
    return phase.unexpected


def run(cards: int, hot: int, rounds: int, seconds: float, out: Path) -> int:
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[0], cores[1]) if len(cores) >= 2 else (cores[0], cores[0])
    per_drive = int(TOKENS_PER_SECOND * (seconds + 1.5))  # a drive: 1 s of warm-up, then `seconds` timed
    figures: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, {cpu_model()}", "cards": cards, "hot": hot,
                               "rounds": rounds, "seconds_per_phase": seconds, "concurrency": CONCURRENCY,
                               "load_average_before": os.getloadavg()[0]}
    rng = random.Random(7)
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="ecard-national-") as tmp:
        url = stack.enter_context(FreshDatabase(os.environ.get("ECARD_BENCH_PG", PG_ADMIN_URL)))
        namespace = f"benchnat{uuid.uuid4().hex[:8]}"
        # One merchant flat out: without the capacity limits its calls past principal_calls_per_s (1,000/s)
        # would be refused RESOURCE_EXHAUSTED, as the warm stream's were once.
        config = capacity_config(Path(tmp) / "ecard.toml", f'redis_namespace = "{namespace}"\n'
                                 f'card_cache_size = {max(2 * hot, 10_000)}\n')
        metrics_port = free_port()
        mine = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {server_core})
        try:
            server = stack.enter_context(EcardServer(db=url, redis=REDIS_URL, extra_args=[
                "--config", config, "--metrics-listen", f"127.0.0.1:{metrics_port}"]))
        finally:
            os.sched_setaffinity(0, mine)
        world = World.seed(server.target, cards=1, prefix=f"n{namespace[-6:]}")
        print(f"generating {cards:,} cards in PostgreSQL", flush=True)
        figures["generate_s"] = round(generate_cards(url, world.issuer_id, cards), 1)
        with psycopg.connect(url) as conn:
            size = conn.execute("SELECT pg_total_relation_size('cards') + pg_total_relation_size('ecard_channels')"
                                ).fetchone()
        figures["cards_and_bindings_bytes"] = int(size[0]) if size else 0
        hot_ids = [ecard_id(rng.randint(1, cards)) for _ in range(hot)]

        def cold_ids(n: int) -> list[str]:
            return [ecard_id(rng.randint(1, cards)) for _ in range(n)]

        def tokens_for(stream: str, n: int) -> list[str]:
            """Fresh tokens of a stream, minted just before the drive that uses them (so none can have
            expired, however slow the machine: they live 300 s)."""
            if stream == "cold":
                return mint_tokens(world, cold_ids(n), n)
            if stream == "warm":
                return mint_tokens(world, hot_ids, n)
            half = n // 2 + 1
            return [token for pair in zip(mint_tokens(world, hot_ids, half), mint_tokens(world, cold_ids(half), half),
                                          strict=True) for token in pair]

        assert server.process is not None
        metadata = (("x-ecard-principal", f"merchant:{world.pharmacy_id}"),)
        targets = [Target(name, server.target, server.process.pid, metadata, iter(()))
                   for name in ("cold", "half", "warm")]
        # The hot set in the cache first (as a day's regulars would be), then the rounds; the hit share of
        # each stream is read from the server's counters around each of its rounds.
        warm_up = Target("warm-up", server.target, server.process.pid, metadata, iter(tokens_for("warm", hot)))
        os.sched_setaffinity(0, {client_core})
        figures["warm_up_unexpected"] = asyncio.run(every_token_once(warm_up, hot))
        figures["warm_up_unexpected_answers"] = dict(warm_up.unexpected_answers)
        seen: dict[str, list[float]] = {t.name: [0.0, 0.0] for t in targets}
        for round_ in range(rounds):
            for target in targets[round_ % 3:] + targets[:round_ % 3]:
                os.sched_setaffinity(0, mine)  # minting takes every core, and no clock runs
                target.tokens = iter(tokens_for(target.name, per_drive))
                os.sched_setaffinity(0, {client_core})
                hits0, misses0 = cache_counts(metrics_port)
                asyncio.run(drive([target], 1, seconds))
                hits1, misses1 = cache_counts(metrics_port)
                seen[target.name][0] += hits1 - hits0
                seen[target.name][1] += misses1 - misses0
        rss, peak = server_memory_mb(server.process.pid)
        figures["server_rss_mb"], figures["server_peak_rss_mb"] = round(rss, 1), round(peak, 1)
    for target in targets:
        hits, misses = seen[target.name]
        figures[target.name] = {
            "verify_per_s_per_core": round(target.calls / target.seconds, 1) if target.seconds else 0.0,
            "p50_ms": round(percentile_ms(target.latencies, 0.50), 2),
            "p99_ms": round(percentile_ms(target.latencies, 0.99), 2),
            "cache_hit_share": round(hits / (hits + misses), 3) if hits + misses else 0.0,
            "server_cpu_share": round(target.cpu / target.seconds, 2) if target.seconds else 0.0,
            "unexpected": target.unexpected,
            "unexpected_answers": dict(target.unexpected_answers),
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"national scale: {cards:,} cards in PostgreSQL (generated in {figures['generate_s']} s, "
          f"{figures['cards_and_bindings_bytes'] / 1e9:.1f} GB with their bindings and indexes); one `ecard serve` "
          f"on one core, PostgreSQL + Redis, {CONCURRENCY} calls in flight, {rounds} rounds of {seconds:g} s")
    for name in ("cold", "half", "warm"):
        f = figures[name]
        print(f"  {name:5} cache hits {f['cache_hit_share']:6.1%}: {f['verify_per_s_per_core']:8.0f} Verify/s per core,"
              f" p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms (server CPU {f['server_cpu_share']:.0%})")
    print(f"  server RSS {figures['server_rss_mb']} MB (peak {figures['server_peak_rss_mb']} MB)")
    odd = {name: figures[name]["unexpected_answers"] for name in ("cold", "half", "warm")
           if figures[name]["unexpected"]}
    if figures["warm_up_unexpected"]:
        odd["warm-up"] = figures["warm_up_unexpected_answers"]
    if odd:  # every token is fresh, for a known card, from a bound channel: anything but an accept is a fault
        print(f"bench national: unexpected answers {odd}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.national", description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=20_000_000)
    parser.add_argument("--hot", type=int, default=20_000, help="cards of the warm set (inside the cache)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=Path("reports/bench_national.json"))
    args = parser.parse_args(argv)
    return run(args.cards, args.hot, args.rounds, args.seconds, args.out)


if __name__ == "__main__":
    sys.exit(main())
