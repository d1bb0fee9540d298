"""`make ha-demo`: ecard settling on PostgreSQL under Patroni while the primary is killed.

    python -m loadtest.rig.ha_demo [--callers 4] [--before 3] [--after 40]

Starts etcd and two PostgreSQL nodes under Patroni (loadtest.rig.ha; one primary, one synchronous
standby), `ecard serve` on their multi-host URL with the machine's Redis, seeds a few cards, and runs
counters that verify and settle (each receipt retried with its own key until acknowledged, as a POS
does); kills the primary (Patroni and PostgreSQL, SIGKILL) after `--before` seconds, waits for the
standby's promotion and `--after` more receipts, then prints what the counters saw and checks every
receipt in the database. Everything is removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ecard import ClientOptions, EcardError, PharmacyClient, Purpose, RetryConfig, Verdict, line_item
from ecard.testing import EcardServer, World
from ecard.v1 import types_pb2 as t
from loadtest.rig.ha import Node, PatroniCluster

PRICE_FEN = 123
ITEMS = [line_item("A1", "insulin", t.DRUG_CLASS_A, unit_price_fen=PRICE_FEN)]
TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED")


@dataclass
class Counters:
    """What the POSes hold: receipts (idempotency key -> settlement id) and every transient error met."""

    acknowledged: dict[str, str] = field(default_factory=dict)
    receipts_by_card: collections.Counter[int] = field(default_factory=collections.Counter)
    unavailable_at: list[float] = field(default_factory=list)
    other_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failed(self, exc: EcardError) -> None:
        with self.lock:
            if exc.status_name in TRANSIENT:
                self.unavailable_at.append(time.monotonic())
            else:
                self.other_errors.append(str(exc))


def checkout(world: World, pos: PharmacyClient, card: int, counters: Counters, deadline: float) -> None:
    """One basket: a fresh code scanned until a Verify answers, then Settle with one key until acknowledged."""
    while True:
        try:
            answer = pos.verify(world.mint(card), purpose=Purpose.MEDICAL_SETTLEMENT)
            if answer.verdict != Verdict.ACCEPTED:
                raise AssertionError(f"Verify: {answer}")
            break
        except EcardError as exc:
            counters.failed(exc)
        if time.monotonic() > deadline:
            raise TimeoutError("no Verify answered")
        time.sleep(0.1)
    key = uuid.uuid4().hex
    while True:  # the POS does not know whether a failed Settle went through: the same key again
        try:
            record = pos.settle(ITEMS, idempotency_key=key, verification_id=answer.verification_id)
            break
        except EcardError as exc:
            counters.failed(exc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"receipt {key} never acknowledged")
        time.sleep(0.1)
    with counters.lock:
        counters.acknowledged[key] = record.settlement_id
        counters.receipts_by_card[card] += 1


@dataclass
class Failover:
    old: str
    new: str
    promoted_s: float  # kill to promotion
    healed_s: float  # kill to settling again
    outage_s: float  # first to last transient error the POSes saw after the kill
    outage_answers: int
    before: int
    total: int

    def __str__(self) -> str:
        return (f"Patroni failover: {self.old} killed; {self.new} primary {self.promoted_s:.1f} s later; settling "
                f"again {self.healed_s:.1f} s after the kill; the POS saw UNAVAILABLE for {self.outage_s:.1f} s "
                f"({self.outage_answers} answers); {self.total} receipts acknowledged, {self.before} before the kill")


def settle_through_failover(cluster: PatroniCluster, server: EcardServer, world: World, counters: Counters, *,
                            callers: int = 4, before_s: float = 3.0, after: int = 40,
                            timeout_s: float = 120.0) -> Failover:
    """Counters settle; the primary is killed after `before_s`; returns once `after` more receipts came."""
    stop, deadline = threading.Event(), time.monotonic() + timeout_s
    options = ClientOptions(timeout=2.0, retry=RetryConfig(max_attempts=3, max_backoff=0.2))
    errors: list[BaseException] = []

    def caller(n: int) -> None:
        try:
            with PharmacyClient(server.target, merchant_id=world.pharmacy_id, options=options) as pos:
                k = 0
                while not stop.is_set():
                    checkout(world, pos, (n + k) % len(world.ecard_ids), counters, deadline)
                    k += 1
        except BaseException as exc:  # reported by the caller of this function
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(callers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(before_s)
        before = len(counters.acknowledged)
        old: Node = cluster.primary()
        killed = time.monotonic()
        cluster.kill(old)
        new = cluster.wait_for_primary(other_than=old)
        promoted = time.monotonic()
        while len(counters.acknowledged) < before + after and not errors:
            if time.monotonic() > deadline:
                raise TimeoutError("ecard did not settle again after the failover")
            time.sleep(0.1)
        healed = time.monotonic()
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    if errors:
        raise errors[0]
    outage = [at for at in counters.unavailable_at if at >= killed]
    return Failover(old.name, new.name, promoted - killed, healed - killed,
                    (max(outage) - min(outage)) if outage else 0.0, len(outage), before, len(counters.acknowledged))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.rig.ha_demo", description=__doc__.split("\n")[0])
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--before", type=float, default=3.0, help="seconds of settling before the kill")
    parser.add_argument("--after", type=int, default=40, help="receipts to wait for after the promotion")
    parser.add_argument("--redis", default=os.environ.get("ECARD_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)
    with PatroniCluster() as cluster, tempfile.TemporaryDirectory(prefix="ecard-ha-demo-") as tmp:
        print(f"PostgreSQL under Patroni: primary {cluster.primary().name}, URL {cluster.url}", flush=True)
        config = Path(tmp) / "ecard.toml"
        config.write_text(f'redis_namespace = "ecard-ha-demo-{uuid.uuid4().hex[:8]}"\n')
        with EcardServer(db=cluster.url, redis=args.redis, extra_args=["--config", str(config)]) as server:
            world = World.seed(server.target, cards=8, balance_fen=10_000_000)
            counters = Counters()
            result = settle_through_failover(cluster, server, world, counters, callers=args.callers,
                                             before_s=args.before, after=args.after)
            print(result)
            with world.pharmacy() as pos:
                lost = [s for s in counters.acknowledged.values() if pos.get_settlement(s).total_fen != PRICE_FEN]
            print(f"receipts checked against the new primary: {len(counters.acknowledged)}, wrong or missing "
                  f"{len(lost)}; other errors {len(counters.other_errors)}")
            return 0 if not lost and not counters.other_errors else 1


if __name__ == "__main__":
    sys.exit(main())
