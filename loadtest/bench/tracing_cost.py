"""`make bench`, third part: what OpenTelemetry tracing costs Verify when it is on.

`ecard serve` (embedded: SQLite, nonces in memory) as shipped (tracing off) beside one traced server
per sampler, all on one core, this client on the other. A traced server has `OTEL_TRACES_EXPORTER=otlp`,
the sampler (`OTEL_TRACES_SAMPLER` and its argument) and exports its spans in batches over OTLP/HTTP to
a collector stand-in of this process's (it answers 200 and counts the spans' bytes, as a collector's
receiver would). The same asyncio client as bench.versus drives each in alternating rounds.

    python -m loadtest.bench.tracing_cost [--rounds 8] [--seconds 2] [--sampler SAMPLER[:ARG] ...]
                                          [--out reports/bench_tracing.json]

The samplers, by default: `parentbased_traceidratio:0.01`, what docs/operations.md tells production to
run (the gate), `parentbased_traceidratio:0.05` and `always_on`, every call recorded and exported, to
price a larger share (a recorded span costs the server about one untraced Verify's CPU: the SDK's span
and its OTLP encoding). Goal, for each: traced Verify/s >= 0.95 x
untraced in the same run, as the median over the rounds of each round's ratio (a round runs every
server once, back to back: a burst of other load on a shared machine moves one round, not the figure);
the pooled ratio and the server's CPU per call are reported beside it. The exit status (1: missed) is
the first sampler's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ecard.testing import EcardServer, World, free_port
from loadtest.bench.limits import capacity_config
from loadtest.bench.run import cpu_model, mint_tokens
from loadtest.bench.versus import CARDS, CONCURRENCY, Target, drive, percentile_ms

GOAL = 0.95
SAMPLERS = [("parentbased_traceidratio", "0.01"), ("parentbased_traceidratio", "0.05"), ("always_on", "1")]
# (production's first: the gate)


class Collector:
    """An OTLP/HTTP receiver stand-in on loopback: 200 to every POST /v1/traces, bytes counted."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                collector.requests += 1
                collector.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(rounds: int, seconds: float, out: Path, samplers: list[tuple[str, str]]) -> int:
    """One untraced server and one traced server per (sampler, argument) of `samplers`, driven in
    alternating rounds; the goal is checked for each, the exit status is the first one's (the sampler
    docs/operations.md tells production to run)."""
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[0], cores[1]) if len(cores) >= 2 else (cores[0], cores[0])
    figures: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, {cpu_model()}", "rounds": rounds,
                               "seconds_per_phase": seconds, "concurrency": CONCURRENCY,
                               "load_average_before": os.getloadavg()[0]}
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    budget = int(6_000 * (rounds * seconds + 1.5))
    configurations = [(f"traced {sampler} {arg}", sampler, arg) for sampler, arg in samplers]
    collectors: dict[str, Collector] = {}
    with contextlib.ExitStack() as stack:
        mine = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {server_core})
        try:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ecard-tracing-")))
            limits = ["--config", capacity_config(folder / "limits.toml")]  # one merchant, flat out
            servers = [("untraced", stack.enter_context(EcardServer(env=plain_env, extra_args=limits)))]
            for name, sampler, arg in configurations:
                collector = collectors[name] = Collector()
                stack.callback(collector.close)
                env = {**plain_env, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": sampler,
                       "OTEL_TRACES_SAMPLER_ARG": arg, "OTEL_SERVICE_NAME": "ecard-bench",
                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{collector.port}/v1/traces"}
                servers.append((name, stack.enter_context(EcardServer(env=env, extra_args=limits))))
        finally:
            os.sched_setaffinity(0, mine)
        os.sched_setaffinity(0, {client_core})
        tag = uuid.uuid4().hex[:6]
        targets = []
        for n, (name, server) in enumerate(servers):
            world = World.seed(server.target, cards=CARDS, prefix=f"t{n}{tag}")
            assert server.process is not None
            targets.append(Target(name, server.target, server.process.pid,
                                  (("x-ecard-principal", f"merchant:{world.pharmacy_id}"),),
                                  iter(mint_tokens(world, world.ecard_ids, budget))))
        asyncio.run(drive(targets, rounds, seconds))
    for target in targets:
        figures[target.name] = {
            "verify_per_s": target.calls / target.seconds if target.seconds else 0.0,
            "p50_ms": percentile_ms(target.latencies, 0.50), "p99_ms": percentile_ms(target.latencies, 0.99),
            "server_cpu_share": target.cpu / target.seconds if target.seconds else 0.0,
            "server_cpu_us_per_call": 1e6 * target.cpu / target.calls if target.calls else 0.0,
            "unexpected": target.unexpected, "round_rates": target.round_rates, "calls": target.calls,
        }
    untraced = figures["untraced"]
    print(f"tracing on vs off, Verify on one core, {rounds} alternating rounds of {seconds:g} s, "
          f"spans exported over OTLP/HTTP to a loopback receiver (load average {figures['load_average_before']:.1f}):")
    print(f"  {'untraced':42} {untraced['verify_per_s']:6.0f} Verify/s  p50 {untraced['p50_ms']:5.2f} ms  "
          f"p99 {untraced['p99_ms']:6.2f} ms  {untraced['server_cpu_us_per_call']:4.0f} us CPU/call")
    unexpected = sum(t.unexpected for t in targets)
    held_all = []
    for name, _, _ in configurations:
        f, collector = figures[name], collectors[name]
        pooled = f["verify_per_s"] / untraced["verify_per_s"] if untraced["verify_per_s"] else 0.0
        rounds_ratios = [t / u for t, u in zip(f["round_rates"], untraced["round_rates"], strict=True) if u]
        ratio = statistics.median(rounds_ratios) if rounds_ratios else 0.0
        held = ratio >= GOAL and collector.requests > 0 and unexpected == 0
        held_all.append(held)
        cpu_ratio = f["server_cpu_us_per_call"] / untraced["server_cpu_us_per_call"] if untraced["calls"] else 0.0
        f.update({"traced_vs_untraced": ratio, "round_ratios": rounds_ratios, "pooled_traced_vs_untraced": pooled,
                  "cpu_per_call_vs_untraced": cpu_ratio,
                  "spans_exported_bytes": collector.bytes, "export_requests": collector.requests,
                  "goal": {"traced_vs_untraced": GOAL, "held": held}})
        print(f"  {name:42} {f['verify_per_s']:6.0f} Verify/s  p50 {f['p50_ms']:5.2f} ms  p99 {f['p99_ms']:6.2f} ms  "
              f"{f['server_cpu_us_per_call']:4.0f} us CPU/call  ({collector.requests} exports)")
        print(f"  {'':42} traced / untraced = {ratio:.3f} (median of the rounds; pooled {pooled:.3f}; "
              f"CPU per call {cpu_ratio:.3f}x) (goal >= {GOAL}): {'held' if held else 'MISSED'}"
              f"{'' if collector.requests else ' (nothing was exported)'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    return 0 if held_all[0] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.tracing_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("reports/bench_tracing.json"))
    parser.add_argument("--sampler", action="append", metavar="SAMPLER[:ARG]",
                        help="OTEL_TRACES_SAMPLER[:OTEL_TRACES_SAMPLER_ARG] of a traced server; repeat for more "
                             "(the first one decides the exit status); default: "
                             + " and ".join(f"{s}:{a}" for s, a in SAMPLERS))
    args = parser.parse_args(argv)
    samplers = [(s.partition(":")[0], s.partition(":")[2] or "1") for s in args.sampler] if args.sampler else SAMPLERS
    return run(args.rounds, args.seconds, args.out, samplers)


if __name__ == "__main__":
    sys.exit(main())
