"""The runner of `python -m loadtest`: one command from nothing to an SLO verdict (what the make targets run).

    python -m loadtest steady       [--run-time 60s]               # make loadtest
    python -m loadtest capacity     [--run-time 6m]                # make loadtest-capacity
    python -m loadtest distributed  [--workers 2] [--run-time 60s] # make loadtest-distributed
    python -m loadtest failover     [--run-time 40s]               # make loadtest-failover (loadtest/rig/failover.py)
    python -m loadtest steady --host ecard.staging:443 -- --tls-ca ca.pem --tls-cert-dir certs/

Without --host it starts `ecard serve` on a free loopback port (fresh SQLite file, via ecard.testing),
lets Locust seed it through the public API, runs headless for the bounded time, stops the server and
exits with Locust's status: 0 when the SLO held, 1 naming the threshold that failed. Arguments after
`--` (or any it does not know) go to Locust: --arrival-rate 40, --slo-checkout-p99 2.5 ...
Reports (NAME: loadtest, capacity or distributed): reports/NAME.report.txt and .json (the verdict and
its figures), Locust's reports/NAME_*.csv and reports/NAME.html; the server's log is reports/NAME.server.log.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILES = {"steady": "loadtest/locustfile.py", "capacity": "loadtest/capacity.py",
               "distributed": "loadtest/locustfile.py"}
DEFAULT_RUN_TIME = {"steady": "60s", "capacity": "6m", "distributed": "60s"}
REPORT_NAMES = {"steady": "loadtest", "capacity": "capacity", "distributed": "distributed"}
SETUP_ALLOWANCE_S = 180
"""Beyond --run-time, time allowed for seeding, ramp-up and the final reports before the run is killed."""


def parse_seconds(text: str) -> int:
    """Locust's run-time syntax: 90, 90s, 5m, 1h30m."""
    if text.isdigit():
        return int(text)
    total, number = 0, ""
    for char in text:
        if char.isdigit():
            number += char
        elif char in "hms" and number:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
        else:
            raise argparse.ArgumentTypeError(f"not a run time: {text!r} (e.g. 90s, 5m, 1h30m)")
    if number:
        raise argparse.ArgumentTypeError(f"not a run time: {text!r} (e.g. 90s, 5m, 1h30m)")
    return total


def locust_command(locustfile: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", locustfile, *args]


@contextmanager
def target_server(host: str | None, log_path: Path) -> Iterator[str]:
    """The given target, or a fresh `ecard serve` on loopback for the duration of the run."""
    if host:
        yield host
        return
    from ecard.testing import EcardServer

    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    with EcardServer(log_path=log_path) as server:
        print(f"ecard serve on {server.target} (log {log_path})", flush=True)
        yield server.target
        print("stopping ecard serve", flush=True)


def run_bounded(commands: Sequence[list[str]], timeout_s: float) -> int:
    """Runs the first command (the master) and the others (workers) beside it; the master's status.

    Everything is killed past `timeout_s`, so a make target always ends."""
    processes = [subprocess.Popen(command, cwd=ROOT) for command in commands]
    master, workers = processes[0], processes[1:]
    try:
        status = master.wait(timeout_s)
    except subprocess.TimeoutExpired:
        print(f"load test still running after {timeout_s:.0f} s: stopping it", file=sys.stderr)
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(15)
        except subprocess.TimeoutExpired:
            master.kill()
        status = 124
    finally:
        for worker in workers:  # the master tells them to quit; make sure they did
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if master.poll() is None:
            master.kill()
            master.wait()
    return status


def add_run_arguments(parser: argparse.ArgumentParser, run_time_default: str | None) -> None:
    """--run-time, --reports and --config: what every runner of a Locust run takes (this one, failover)."""
    parser.add_argument("--run-time", default=run_time_default,
                        help="bound of the load (Locust syntax: 60s, 5m); capacity stops earlier when a step breaks")
    parser.add_argument("--reports", default="reports", help="folder for the reports (default reports)")
    parser.add_argument("--config", default="loadtest/locust.conf",
                        help="Locust config file with the workload and thresholds (default loadtest/locust.conf)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=sorted(LOCUSTFILES), nargs="?", default="steady")
    parser.add_argument("--host", help="HOST:PORT of a running deployment (default: a fresh server on loopback)")
    parser.add_argument("--workers", type=int, default=2, help="Locust workers in distributed mode (default 2)")
    add_run_arguments(parser, None)
    args, passthrough = parser.parse_known_args(argv)
    passthrough = [a for a in passthrough if a != "--"]
    run_time = args.run_time or DEFAULT_RUN_TIME[args.mode]
    run_seconds = parse_seconds(run_time)
    reports = Path(args.reports).resolve()
    name = REPORT_NAMES[args.mode]
    prefix = str(reports.relative_to(ROOT) / name if reports.is_relative_to(ROOT) else reports / name)
    locustfile = LOCUSTFILES[args.mode]
    common = ["--config", str(Path(args.config).resolve()), "--headless", "--run-time", run_time,
              "--csv", prefix, "--html", f"{prefix}.html", "--report-prefix", prefix, *passthrough]
    os.chdir(ROOT)
    with target_server(args.host, Path(f"{prefix}.server.log")) as target:
        if args.mode != "distributed":
            commands = [locust_command(locustfile, "--host", target, *common)]
        else:
            from ecard.testing import free_port

            port = str(free_port())
            master = locust_command(locustfile, "--host", target, "--master", "--master-bind-host", "127.0.0.1",
                                    "--master-bind-port", port, "--expect-workers", str(args.workers),
                                    "--expect-workers-max-wait", "60", *common)
            worker = locust_command(locustfile, "--worker", "--master-host", "127.0.0.1", "--master-port", port)
            commands = [master] + [worker] * args.workers
        started = time.monotonic()
        status = run_bounded(commands, run_seconds + SETUP_ALLOWANCE_S)
    verdict = {0: "SLO PASS", 1: "SLO FAIL"}.get(status, f"load test failed (exit {status})")
    print(f"{verdict} after {time.monotonic() - started:.0f} s: see {prefix}.report.txt, {prefix}.html and "
          f"{prefix}_stats.csv", flush=True)
    return status
