"""How long a change made on one replica takes to be enforced by the others.

One change = an e-card reported lost (or reinstated) through replica A; its delay on replica B is the
time from A's acknowledgement until B's first answer with the new verdict to a fresh token (B is asked
every `poll_s`, each time with a new token). That is an upper bound: it includes the whole of that last
Verify call (on a loaded machine, the slowest figures are one slow call, not a late change notice).
The lower bound is the start of the last call that still got the old verdict (0 if the first got the new).
Changes alternate lost / reinstated over a few e-cards, A turns round the replicas, and every other
replica is measured for each change. `python -m loadtest.measure.propagation` (make cluster-propagation)
runs 1,000 changes on a fresh three-replica cluster and prints p50/p99/max.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecard import AdminClient, ChannelClient, PharmacyClient
from ecard.v1 import types_pb2
from loadtest.harness.seeding import Seed

PROMISE_S = 1.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _figures(values: list[float]) -> dict[str, float | None]:
    return {
        "p50_ms": round(_quantile(values, 0.50) * 1000, 2), "p99_ms": round(_quantile(values, 0.99) * 1000, 2),
        "max_ms": round(max(values, default=float("nan")) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 1) if values else None,
    }


@dataclass
class Delays:
    seconds: list[float] = field(default_factory=list)
    """Upper bounds: acknowledgement to the end of the first call with the new verdict."""
    lower: list[float] = field(default_factory=list)
    """Lower bounds: acknowledgement to the start of the last call with the old verdict (0: none)."""
    late: int = 0
    """Changes not seen within the bound at all."""

    def summary(self) -> dict[str, Any]:
        return {
            "observations": len(self.seconds), "not_within_bound": self.late, **_figures(self.seconds),
            "first_call_already_new": sum(1 for value in self.lower if value == 0.0),
            "lower_bound": _figures(self.lower),
        }


def delay_until(
    counter: PharmacyClient, mint: Callable[[], str], wanted: int, *, since: float, bound_s: float, poll_s: float
) -> tuple[float, float] | None:
    """(upper, lower) bounds in seconds from `since` until `counter`'s replica gives reason `wanted` to
    a fresh token; None past `bound_s`."""
    lower = 0.0
    while True:
        asked = time.monotonic()
        if counter.verify(mint(), purpose=types_pb2.PURPOSE_IDENTITY).reason == wanted:
            return time.monotonic() - since, lower
        lower = asked - since
        if time.monotonic() - since > bound_s:
            return None
        time.sleep(poll_s)


def measure_card_changes(
    targets: list[str], seed: Seed, options_for: Callable[[str], Any], *, changes: int, cards: int = 4,
    bound_s: float = 5.0, poll_s: float = 0.005,
) -> Delays:
    """`changes` lost/reinstated changes, each made on one replica and timed on every other one."""
    bank = seed.channels[0]
    signer, merchant = bank.signer(), seed.pharmacies[0]
    ecards = [ecard_id for ecard_id, _ in seed.ecards[:cards]]
    channels = [ChannelClient(t, issuer_id=bank.issuer_id, options=options_for(f"channel:{bank.issuer_id}"))
                for t in targets]
    admins = [AdminClient(t, options=options_for("admin")) for t in targets]
    counters = [PharmacyClient(t, merchant_id=merchant, options=options_for(f"merchant:{merchant}")) for t in targets]
    delays = Delays()
    try:
        for n in range(changes):
            ecard_id, origin = ecards[n % len(ecards)], n % len(targets)
            lost = (n // len(ecards)) % 2 == 0  # each card: lost, then reinstated, then lost...
            if lost:
                channels[origin].report_lost(ecard_id=ecard_id)
            else:
                admins[origin].reinstate(ecard_id=ecard_id)
            acknowledged = time.monotonic()
            wanted = types_pb2.REASON_CARD_LOST if lost else types_pb2.REASON_OK
            mint = functools.partial(signer.mint, ecard_id)
            for other in (i for i in range(len(targets)) if i != origin):
                delay = delay_until(counters[other], mint, wanted, since=acknowledged, bound_s=bound_s, poll_s=poll_s)
                if delay is None:
                    delays.late += 1
                else:
                    delays.seconds.append(delay[0])
                    delays.lower.append(delay[1])
    finally:
        for client in [*channels, *admins, *counters]:
            client.close()
    return delays


def main(argv: list[str] | None = None) -> int:
    from loadtest.rig.cluster import demo_cluster

    parser = argparse.ArgumentParser(prog="python -m loadtest.measure.propagation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--out", default="reports/propagation.json")
    args = parser.parse_args(argv)
    with demo_cluster(3) as (cluster, seed):
        started = time.monotonic()
        delays = measure_card_changes(cluster.targets, seed, cluster.options, changes=args.changes)
        summary = {"changes": args.changes, "replicas": 3, "seconds": round(time.monotonic() - started, 1),
                   **delays.summary()}
    print(json.dumps(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    ok = delays.late == 0 and max(delays.seconds, default=0) < PROMISE_S
    print(f"{'PASS' if ok else 'FAIL'}: every change enforced by the other replicas within {PROMISE_S} s"
          if ok else f"FAIL: {delays.late} not seen, max {summary['max_ms']} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
