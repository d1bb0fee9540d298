"""`make bench`, third part: what OpenTelemetry tracing costs Verify when it is on.

Two `ecard serve` (embedded: SQLite, nonces in memory) side by side on one core, this client on the
other: one as shipped (tracing off), one with `OTEL_TRACES_EXPORTER=otlp`, every call sampled
(`OTEL_TRACES_SAMPLER=always_on`, or `--sampler`) and exported in batches over OTLP/HTTP to a collector stand-in of
this process's (it answers 200 and counts the spans' bytes, as a collector's receiver would). The same
asyncio client as bench.versus drives each in alternating rounds.

    python -m loadtest.bench.tracing_cost [--rounds 3] [--seconds 3] [--out reports/bench_tracing.json]

Goal (exit 1 when it fails): traced Verify/s >= 0.95 x untraced in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
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


def run(rounds: int, seconds: float, out: Path, sampler: str = "always_on", sampler_arg: str = "1") -> int:
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[0], cores[1]) if len(cores) >= 2 else (cores[0], cores[0])
    figures: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, {cpu_model()}", "rounds": rounds,
                               "seconds_per_phase": seconds, "concurrency": CONCURRENCY,
                               "load_average_before": os.getloadavg()[0], "sampler": f"{sampler} {sampler_arg}"}
    collector = Collector()
    traced_env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp",
                  "OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": sampler_arg,
                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{collector.port}/v1/traces",
                  "OTEL_SERVICE_NAME": "ecard-bench"}
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    budget = int(6_000 * (rounds * seconds + 1.5))
    with contextlib.ExitStack() as stack:
        stack.callback(collector.close)
        mine = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {server_core})
        try:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ecard-tracing-")))
            limits = ["--config", capacity_config(folder / "limits.toml")]  # one merchant, flat out
            plain = stack.enter_context(EcardServer(env=plain_env, extra_args=limits))
            traced = stack.enter_context(EcardServer(env=traced_env, extra_args=limits))
        finally:
            os.sched_setaffinity(0, mine)
        os.sched_setaffinity(0, {client_core})
        tag = uuid.uuid4().hex[:6]
        targets = []
        for name, server in (("untraced", plain), ("traced", traced)):
            world = World.seed(server.target, cards=CARDS, prefix=f"{name[0]}{tag}")
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
            "unexpected": target.unexpected, "round_rates": target.round_rates,
        }
    figures["spans_exported_bytes"] = collector.bytes
    figures["export_requests"] = collector.requests
    ratio = figures["traced"]["verify_per_s"] / figures["untraced"]["verify_per_s"]
    figures["traced_vs_untraced"] = ratio
    held = ratio >= GOAL and collector.requests > 0 and all(t.unexpected == 0 for t in targets)
    figures["goal"] = {"traced_vs_untraced": GOAL, "held": held}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"tracing on ({sampler} {sampler_arg}, OTLP/HTTP to a loopback receiver: {collector.requests} exports, "
          f"{collector.bytes} bytes) vs off, Verify on one core, {rounds} alternating rounds of {seconds:g} s:")
    for name in ("untraced", "traced"):
        f = figures[name]
        print(f"  {name:9} {f['verify_per_s']:8.0f} Verify/s   p50 {f['p50_ms']:.2f} ms   p99 {f['p99_ms']:.2f} ms")
    print(f"  traced / untraced = {ratio:.3f} (goal >= {GOAL}): {'held' if held else 'MISSED'}")
    return 0 if held else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.tracing_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=Path("reports/bench_tracing.json"))
    parser.add_argument("--sampler", default="always_on", help="OTEL_TRACES_SAMPLER of the traced server")
    parser.add_argument("--sampler-arg", default="1", help="OTEL_TRACES_SAMPLER_ARG (a ratio)")
    args = parser.parse_args(argv)
    return run(args.rounds, args.seconds, args.out, args.sampler, args.sampler_arg)


if __name__ == "__main__":
    sys.exit(main())
