"""`make bench` (events): 1,000 channel events a second delivered to 22 channels, and their lag.

One `ecard serve` process (fresh SQLite file, the embedded default) and, in this process, 22 channels
each holding an open `ecard.ChannelEvents` stream. Cards are bound to `--bindings` channels each (8), so one
card status change (ReportLost or Reinstate, alternately, by the operator) is written as that many
events in its transaction: the producer makes `rate / bindings` changes a second (open model, evenly
spaced) to deliver `rate` events a second in all. With `--db postgresql://... --redis redis://...` the
server is the shared deployment (streams woken through Redis), in its own Redis namespace.

    lag        from the moment the change was sent to the moment its event reached a channel's stream
               (the change's own call included, and its wait when the writes fall behind), per
               delivered event: p50, p99, max; beside it the change calls' own latency
    delivery   from the change call's answer to its event's arrival (0 when the event came first): the
               streams' own part of the lag, which the writes' queue on a loaded machine does not hide
    server ms per change   the server's CPU over the changes' phase, per change made
    delivered  events received / events expected; lost (expected, never received) and repeated

    python -m loadtest.bench.events [--rate 1000] [--seconds 10] [--channels 22] [--bindings 4]
                                    [--db URL --redis URL] [--out reports/bench_events.json]

Exits 1 when an event is lost or repeated, or fewer than 95 % of the rate asked was delivered. With
fewer bindings a card, more changes are needed for the same events: at 4 (250 changes a second) the
writes, not the delivery, set the pace on a small machine (docs/channel.md gives both runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import grpc.aio
from hdrh.histogram import HdrHistogram

from ecard import (
    AdminClient,
    ChannelClient,
    ChannelEventKind,
    ChannelEvents,
    TokenSigner,
    generate_private_key,
    physical_cards,
    public_key_pem,
)
from ecard.testing import EcardServer, fake_holder
from ecard.v1 import cards_pb2, cards_pb2_grpc, types_pb2
from loadtest.bench.versus import delete_namespace
from loadtest.bench.workers import cpu_seconds

DEFAULT_BINDINGS = 8


def seed(target: str, channels: int, cards: int, bindings: int) -> tuple[list[str], list[str]]:
    """`channels` issuers with keys; `cards` e-cards, card n bound to channels n .. n+bindings-1 (mod channels)."""
    issuers = [f"bench-ch{n:02d}" for n in range(channels)]
    signers: dict[str, TokenSigner] = {}
    holders = [fake_holder(n, "EV") for n in range(cards)]
    with AdminClient(target) as admin:
        for issuer_id in issuers:
            key = generate_private_key()
            admin.upsert_issuer(issuer_id, issuer_id)
            signers[issuer_id] = TokenSigner(key, issuer_id=issuer_id, kid=admin.register_key(
                issuer_id, public_key_pem(key)).kid)
        admin.enroll_cards(physical_cards((*h, "330200", 0) for h in holders))
    clients = {i: ChannelClient(target, issuer_id=i, signer=signers[i]) for i in issuers}
    ecard_ids: list[str] = []
    try:
        for n, holder in enumerate(holders):
            for k in range(bindings):
                card = clients[issuers[(n + k) % channels]].issue_ecard(*holder, assurance=types_pb2.ASSURANCE_FACE)
            ecard_ids.append(card.ecard_id)
    finally:
        for client in clients.values():
            client.close()
    return issuers, ecard_ids


async def measure(target: str, issuers: list[str], ecard_ids: list[str], rate: float, seconds: float,
                  bindings: int, server_pid: int) -> dict[str, Any]:
    changes_per_s = rate / bindings
    total_changes = int(changes_per_s * seconds)
    sent: dict[str, list[float]] = defaultdict(list)  # per card: when each of its changes was sent
    answered: dict[str, list[float]] = defaultdict(list)  # per card: when each of its changes was answered
    arrived: list[tuple[str, int, float]] = []  # (card, its change's index, when its event reached a stream)
    seen: dict[tuple[str, str], int] = defaultdict(int)  # per (channel, card): status events received
    lag = HdrHistogram(1, 60_000_000, 3)  # microseconds
    acked = HdrHistogram(1, 60_000_000, 3)  # the change calls' own latency
    received = repeated = 0
    cursors: dict[str, int] = {}
    expected = total_changes * bindings

    async def consume(issuer_id: str, ready: asyncio.Event) -> None:
        nonlocal received, repeated
        async with ChannelEvents(target, issuer_id=issuer_id) as stream:
            ready.set()
            async for event in stream:
                now = time.perf_counter()
                if event.cursor <= cursors.get(issuer_id, 0):
                    repeated += 1
                    continue
                cursors[issuer_id] = event.cursor
                if event.kind != ChannelEventKind.CARD_STATUS:
                    continue
                n = seen[(issuer_id, event.ecard_id)]
                seen[(issuer_id, event.ecard_id)] = n + 1
                times = sent[event.ecard_id]
                if n < len(times):
                    lag.record_value(max(1, int((now - times[n]) * 1e6)))
                    arrived.append((event.ecard_id, n, now))
                received += 1

    readies = [asyncio.Event() for _ in issuers]
    consumers = [asyncio.ensure_future(consume(i, r)) for i, r in zip(issuers, readies, strict=True)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    await asyncio.sleep(1.0)  # the seeding's BINDING events drain first

    channel = grpc.aio.insecure_channel(target)
    stub = cards_pb2_grpc.CardsStub(channel)
    metadata = (("x-ecard-principal", "admin"),)
    lost_card: dict[str, bool] = defaultdict(bool)
    locks = {e: asyncio.Lock() for e in ecard_ids}
    failures = 0

    async def change(n: int) -> None:
        nonlocal failures
        ecard_id = ecard_ids[n % len(ecard_ids)]
        async with locks[ecard_id]:  # one change of a card at a time: its events' order is its sends' order
            ref = cards_pb2.CardRef(ecard_id=ecard_id)
            method = stub.Reinstate if lost_card[ecard_id] else stub.ReportLost
            began = time.perf_counter()
            sent[ecard_id].append(began)
            try:
                await method(ref, metadata=metadata, timeout=10)
                answered[ecard_id].append(time.perf_counter())
                acked.record_value(max(1, int((answered[ecard_id][-1] - began) * 1e6)))
                lost_card[ecard_id] = not lost_card[ecard_id]
            except grpc.RpcError:
                sent[ecard_id].pop()
                failures += 1

    start, server_cpu = time.perf_counter(), cpu_seconds(server_pid)
    tasks = []
    for n in range(total_changes):
        delay = start + n / changes_per_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(change(n)))
    await asyncio.gather(*tasks)
    produce_s = time.perf_counter() - start
    server_cpu = cpu_seconds(server_pid) - server_cpu
    made = sum(len(v) for v in sent.values())
    deadline = time.perf_counter() + 30
    while received < made * bindings and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    deliver_s = time.perf_counter() - start
    for task in consumers:
        task.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    await channel.close()
    delivery = HdrHistogram(1, 60_000_000, 3)
    for ecard_id, n, now in arrived:
        if n < len(answered[ecard_id]):
            delivery.record_value(max(1, int((now - answered[ecard_id][n]) * 1e6)))
    return {
        "channels": len(issuers),
        "rate_asked_events_per_s": rate,
        "seconds": seconds,
        "changes_made": made,
        "change_failures": failures,
        "events_expected": made * bindings,
        "events_asked": expected,
        "events_received": received,
        "events_repeated": repeated,
        "events_lost": made * bindings - received,
        "delivered_events_per_s": round(received / deliver_s, 1),
        "produced_events_per_s": round(made * bindings / produce_s, 1),
        "lag_p50_ms": lag.get_value_at_percentile(50) / 1000,
        "lag_p99_ms": lag.get_value_at_percentile(99) / 1000,
        "lag_max_ms": lag.get_max_value() / 1000,
        "change_call_p50_ms": acked.get_value_at_percentile(50) / 1000,
        "change_call_p99_ms": acked.get_value_at_percentile(99) / 1000,
        "delivery_p50_ms": delivery.get_value_at_percentile(50) / 1000,
        "delivery_p99_ms": delivery.get_value_at_percentile(99) / 1000,
        "server_ms_per_change": round(server_cpu * 1000 / max(made, 1), 2),
        "bindings_per_card": bindings,
        "store": "",
    }


def run(rate: float, seconds: float, channels: int, bindings: int, out: Path, db: str | None,
        redis: str | None) -> int:
    cards = max(channels * 4, int(rate / bindings))
    namespace = f"ecard-bench-events-{uuid.uuid4().hex[:8]}"  # its own Redis namespace: never the shared default
    try:
        with tempfile.TemporaryDirectory(prefix="ecard-bench-events-") as tmp:
            config = Path(tmp) / "ecard.toml"
            config.write_text(f'redis_namespace = "{namespace}"\n')
            with EcardServer(db=db, redis=redis, extra_args=["--config", str(config)]) as server:
                issuers, ecard_ids = seed(server.target, channels, cards, bindings)
                assert server.process is not None
                figures = asyncio.run(measure(server.target, issuers, ecard_ids, rate, seconds, bindings,
                                              server.process.pid))
    finally:
        if redis:
            delete_namespace(namespace, redis)  # the machine's Redis keeps nothing of the run, also on failure
    figures["store"] = "postgresql+redis" if db and db.startswith("postgresql") else "sqlite"
    figures["redis_namespace"] = namespace if redis else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    held = (figures["events_lost"] == 0 and figures["events_repeated"] == 0
            and figures["delivered_events_per_s"] >= 0.95 * rate)
    print("events bench:", "held" if held else "FAILED (lost, repeated, or under 95 % of the rate asked)")
    return 0 if held else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.events", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events a second to deliver, in all")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--channels", type=int, default=22)
    parser.add_argument("--bindings", type=int, default=DEFAULT_BINDINGS,
                        help="channels each card is bound to: events written per change")
    parser.add_argument("--out", default="reports/bench_events.json")
    parser.add_argument("--db", help="a fresh database URL (default: a fresh SQLite file)")
    parser.add_argument("--redis", help="a Redis URL, with --db postgresql://...")
    args = parser.parse_args(argv)
    return run(args.rate, args.seconds, args.channels, args.bindings, Path(args.out), args.db, args.redis)


if __name__ == "__main__":
    sys.exit(main())
