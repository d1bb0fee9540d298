"""`make bench-pricing` (part of `make bench`): Quote and Settle of a 20-line basket against a
100,000-item catalogue, beside the 3-line Settle of `make bench`, on SQLite and on PostgreSQL.

For each backend, one `ecard serve` process (a fresh SQLite file; a fresh PostgreSQL database with
the machine's Redis, a namespace of its own, deleted afterwards) and one load process on loopback:

    settle3_rate          3-line Settle by verification_id, no catalogue        (the comparison)
    import_100k_s         ecard's Admin.ImportCatalogue of 100,000 items, end to end (goal <= 10 s)
    quote20_rate          Quote of a 20-line basket by verification_id           (goal >= 1,000/s)
    settle20_rate         Settle of that basket by verification_id, priced from the catalogue in the
                          Settle's own transaction (goal >= 1,000/s). A Settle by quote_id does the
                          same work and one MAC more; it is not timed here, since a quote holds only
                          while its holder's balance and accumulators do not move, and the load's
                          holders settle many times a second.
    quote20_vs_settle3, settle20_vs_settle3   the ratios, measured in the same run
    *_client_cores, *_server_cores   CPU the load process and the server used in each timed phase, in
                          cores (the machine has os.cpu_count()): a load process near 1.0 is the
                          limit itself (one Python thread), and the rate says as much about it as
                          about the server

    python -m loadtest.bench.pricing [--seconds S] [--backends sqlite,postgresql] [--out FILE]

Verifications for the Settle phases are made before their clock starts (they are the
counter's earlier steps). Exits 1 when a goal is missed; the machine is shared, so read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecard import AdminClient, catalogue_item, line_item
from ecard.testing import EcardServer, World
from ecard.v1 import settlement_pb2
from ecard.v1 import types_pb2 as t
from loadtest.bench.limits import capacity_config
from loadtest.bench.run import Load, Phase, closed_loop, mint_tokens, request
from loadtest.bench.versus import delete_namespace
from loadtest.bench.workers import PG_ADMIN_URL, REDIS_URL, FreshDatabase, cpu_seconds

CATALOGUE_ITEMS = 100_000
CLASSES = (t.DRUG_CLASS_A, t.DRUG_CLASS_B, t.DRUG_CLASS_C)
BASKET3 = [line_item("XA01", "amoxicillin", t.DRUG_CLASS_A, 1280, 2),
           line_item("XB07", "ibuprofen", t.DRUG_CLASS_B, 1550, 1),
           line_item("XC11", "vitamin C", t.DRUG_CLASS_C, 900, 1)]
# Twenty lines spread over the catalogue, their classes left to it (the deprecated field unset).
BASKET20 = [line_item(f"C{(n * 4999) % CATALOGUE_ITEMS:06d}", "", 0, 500 + 37 * n, 1 + n % 3) for n in range(20)]
CONCURRENCY = 8
GOALS = {"quote20_rate": 1_000, "settle20_rate": 1_000}


def catalogue() -> Iterator[Any]:
    yield from (catalogue_item(b.code, b.name or "bench", c, 10**6) for b, c in zip(BASKET3, CLASSES, strict=True))
    for n in range(CATALOGUE_ITEMS - len(BASKET3)):
        yield catalogue_item(f"C{n:06d}", f"item {n}", CLASSES[n % 3], 800 + n % 1000)


async def verified(load: Load, tokens: Iterator[str], count: int) -> list[str]:
    handles = []
    for n in range(count):
        answer = await load.pick(load.verifiers, n).Verify(
            request(next(tokens), t.PURPOSE_MEDICAL_SETTLEMENT, t.ASSURANCE_PIN), metadata=load.metadata, timeout=10)
        if answer.reason == t.REASON_OK:
            handles.append(answer.verification_id)
    return handles


async def timed(name: str, phase: Any, server_pid: int, figures: dict[str, Any]) -> Phase:
    """Runs a closed_loop phase; records its rate, p99 and the CPU the load process and the server used."""
    client0, server0 = time.process_time(), cpu_seconds(server_pid)
    result: Phase = await phase
    if result.seconds:
        figures[f"{name}_client_cores"] = round((time.process_time() - client0) / result.seconds, 2)
        figures[f"{name}_server_cores"] = round((cpu_seconds(server_pid) - server0) / result.seconds, 2)
    figures[f"{name}_rate"], figures[f"{name}_p99_ms"] = result.rate, result.percentile_ms(0.99)
    figures["unexpected"] = figures.get("unexpected", 0) + result.unexpected
    return result


async def measure(target: str, server_pid: int, world: World, seconds: float, figures: dict[str, Any]) -> None:
    budget = int(seconds * 2_500) + 200
    tokens = iter(mint_tokens(world, world.ecard_ids, budget * 2))
    load = Load(target, world.hospital_id)
    run = uuid.uuid4().hex[:8]
    try:
        handles = await verified(load, tokens, budget)

        async def settle3(i: int) -> int:
            record = await load.pick(load.settlements, i).Settle(settlement_pb2.SettleRequest(
                idempotency_key=f"s3-{run}-{i}", verification_id=handles[i], items=BASKET3),
                metadata=load.metadata, timeout=10)
            return int(sum((record.fund_paid_fen, record.personal_account_paid_fen, record.self_pay_fen))
                       != record.total_fen)

        await timed("settle3", closed_loop(settle3, concurrency=CONCURRENCY, seconds=seconds, limit=len(handles)),
                    server_pid, figures)

        started = time.perf_counter()
        with AdminClient(target) as admin:
            summary = admin.import_catalogue(catalogue(), timeout=120)
        figures["import_100k_s"] = time.perf_counter() - started
        assert summary.items == CATALOGUE_ITEMS
        time.sleep(0.5)  # the import's change notice reaches the server's catalogue cache

        handles = await verified(load, tokens, budget)
        quote_handles = handles[:64]  # a Quote moves nothing: a few verifications quote over and over

        async def quote20(i: int) -> int:
            answer = await load.pick(load.settlements, i).Quote(settlement_pb2.QuoteRequest(
                verification_id=quote_handles[i % len(quote_handles)], items=BASKET20),
                metadata=load.metadata, timeout=10)
            return int(sum((answer.fund_paid_fen, answer.personal_account_paid_fen, answer.self_pay_fen))
                       != answer.total_fen)

        await closed_loop(quote20, concurrency=CONCURRENCY, seconds=0.5, limit=10**9)  # the catalogue is loaded
        await timed("quote20", closed_loop(quote20, concurrency=CONCURRENCY, seconds=seconds, limit=10**9),
                    server_pid, figures)

        settle_handles = handles[64:]

        async def settle20(i: int) -> int:  # priced from the catalogue in the Settle itself, as a quote is
            record = await load.pick(load.settlements, i).Settle(settlement_pb2.SettleRequest(
                idempotency_key=f"s20-{run}-{i}", verification_id=settle_handles[i], items=BASKET20),
                metadata=load.metadata, timeout=10)
            return int(len(record.lines) != 20 or not record.catalogue_version)

        phase = await timed("settle20", closed_loop(settle20, concurrency=CONCURRENCY, seconds=seconds,
                                                    limit=len(settle_handles)), server_pid, figures)
        if phase.calls >= len(settle_handles):
            figures["settle20_note"] = "ran out of verifications: the rate is a lower bound"
    finally:
        await load.close()
    figures["quote20_vs_settle3"] = figures["quote20_rate"] / figures["settle3_rate"]
    figures["settle20_vs_settle3"] = figures["settle20_rate"] / figures["settle3_rate"]


def pid_of(server: EcardServer) -> int:
    assert server.process is not None
    return server.process.pid


def bench_backend(backend: str, seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ecard-bench-pricing-") as tmp:
        if backend == "sqlite":
            config = capacity_config(Path(tmp) / "bench.toml")
            with EcardServer(extra_args=["--config", config]) as server:
                world = World.seed(server.target, cards=200, balance_fen=10**9)
                asyncio.run(measure(server.target, pid_of(server), world, seconds, figures))
            return figures
        namespace = f"ecard-bench-pricing-{uuid.uuid4().hex[:8]}"
        config = capacity_config(Path(tmp) / "bench.toml", f'redis_namespace = "{namespace}"\n')
        try:
            with FreshDatabase(PG_ADMIN_URL) as db, EcardServer(db=db, redis=REDIS_URL,
                                                                extra_args=["--config", config]) as server:
                world = World.seed(server.target, cards=200, balance_fen=10**9)
                time.sleep(1.0)  # change notices reach the server's caches
                asyncio.run(measure(server.target, pid_of(server), world, seconds, figures))
        finally:
            delete_namespace(namespace)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.pricing", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each timed phase")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--out", default="reports/bench_pricing.json")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
                              "goals": {**GOALS, "import_100k_s": 10}}
    failed = []
    for backend in args.backends.split(","):
        figures = bench_backend(backend, args.seconds)
        report[backend] = figures
        print(f"{backend:11} settle3 {figures['settle3_rate']:7.0f}/s  quote20 {figures['quote20_rate']:7.0f}/s "
              f"({figures['quote20_vs_settle3']:.2f}x)  settle20 {figures['settle20_rate']:7.0f}/s "
              f"({figures['settle20_vs_settle3']:.2f}x)  import 100k {figures['import_100k_s']:.1f} s  "
              f"unexpected {figures['unexpected']}")
        print(" " * 12 + "cores, load process/server: " + "  ".join(
            f"{name} {figures.get(f'{name}_client_cores', 0):.2f}/{figures.get(f'{name}_server_cores', 0):.2f}"
            for name in ("settle3", "quote20", "settle20")))
        failed += [f"{backend} {name} {figures[name]:.0f} < {goal}" for name, goal in GOALS.items()
                   if figures[name] < goal]
        if figures["import_100k_s"] > 10:
            failed.append(f"{backend} import_100k_s {figures['import_100k_s']:.1f} > 10")
        if figures["unexpected"]:
            failed.append(f"{backend}: {figures['unexpected']} unexpected answers")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**report, "failed": failed}, indent=2))
    for line in failed:
        print("goal missed:", line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
