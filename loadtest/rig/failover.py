"""`python -m loadtest failover`: the SLO load against three replicas, one SIGKILLed mid-run and restarted.

    python -m loadtest failover [--run-time 40s] [--kill-at 15] [--restart-at 25] [-- LOCUST OPTIONS]

Brings up `loadtest.rig.cluster` (three namespaces, mTLS, a fresh PostgreSQL database, the machine's Redis),
runs the steady Locust workload with `--host` naming all three (the SDK balances round robin with
health checks), SIGKILLs replica 1 `--kill-at` seconds after the first Verify reaches the cluster and
starts it again at `--restart-at`. Then it checks, through the API and the database:

- the SLO gate of the run (checkout p50/p99, failure ratio: the error budget, wrong verdicts, which
  include the hostile mix's replayed tokens, whose two uses go to different replicas);
- every settlement the load generator was answered for (loadtest/failover_probe.py) is in the
  database with the same amounts, and readable through GetSettlement on each replica;
- every ledger balances: each card's balance is the sum of its ledger, each settlement's shares add
  up to its total and match the card ledger and the fund ledger.

Reports: reports/failover.report.txt/.json (Locust's SLO report), reports/failover.failover.json and
.txt (kill and restart moments, a per-second timeline of requests and failures around them, the
checks), Locust's CSV and HTML, and each replica's log (reports/failover/replica-N.log).
Exit 0 when the SLO held and every check passed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecard import PharmacyClient
from loadtest.harness.runner import (
    ROOT,
    SETUP_ALLOWANCE_S,
    add_run_arguments,
    locust_command,
    parse_seconds,
    run_bounded,
)
from loadtest.harness.seeding import seed_deployment
from loadtest.harness.settings import add_merchant_counts
from loadtest.rig.cluster import VERIFY, Cluster, fresh_database
from loadtest.rig.pki import SERVER_NAME
from loadtest.rig.replay_probe import ReplayProbe

LOCUSTFILES = "loadtest/locustfile.py,loadtest/failover_probe.py"


class KillSchedule(threading.Thread):
    """Waits for the load to reach the cluster, then SIGKILLs replica `victim` and later restarts it."""

    def __init__(self, cluster: Cluster, victim: int, kill_at: float, restart_at: float) -> None:
        super().__init__(daemon=True, name="kill-schedule")
        self.cluster, self.victim, self.kill_at, self.restart_at = cluster, victim, kill_at, restart_at
        self.moments: dict[str, float] = {}
        self.error: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while sum(r.requests(VERIFY) for r in self.cluster.replicas) == 0:
                if self.stop.wait(0.2):
                    return
            self.moments["load_seen"] = start = time.time()
            if self.stop.wait(max(0.0, start + self.kill_at - time.time())):
                return
            self.cluster.kill(self.victim)
            self.moments["kill"] = time.time()
            if self.stop.wait(max(0.0, start + self.restart_at - time.time())):
                return
            self.moments["restart_begun"] = time.time()
            self.cluster.start(self.victim)
            self.moments["restart_serving"] = time.time()
        except Exception as exc:  # reported, and fails the run
            self.error = f"{type(exc).__name__}: {exc}"


def make_certificates(cluster: Cluster, tag: str, pharmacies: int, hospitals: int) -> None:
    """A client certificate for every principal the seeding and the users of seed `tag` act as."""
    principals = ["admin", f"channel:lt{tag}-bank", f"channel:lt{tag}-wallet"]
    principals += [f"merchant:lt{tag}-ph{i:03d}" for i in range(pharmacies)]
    principals += [f"merchant:lt{tag}-hosp{i:02d}" for i in range(hospitals)]
    for principal in principals:
        cluster.pki.client(principal)


def timeline(history_csv: Path, moments: dict[str, float]) -> list[dict[str, Any]]:
    """Locust's per-second aggregated rows, as seconds from the kill (requests/s, failures/s, p99 ms)."""
    if not history_csv.exists():
        return []
    zero = moments.get("kill", 0.0)
    rows = []
    with history_csv.open(newline="") as source:
        for row in csv.DictReader(source):
            if row.get("Name") != "Aggregated":
                continue
            rows.append(
                {
                    "t_from_kill_s": round(float(row["Timestamp"]) - zero),
                    "requests_per_s": float(row["Requests/s"] or 0),
                    "failures_per_s": float(row["Failures/s"] or 0),
                    "p99_ms": row.get("99%") or "",
                }
            )
    return rows


def check_settlements(cluster: Cluster, db: str, acks_path: Path) -> dict[str, Any]:
    """Every acknowledged settlement in the database with its amounts, and through the API on every
    replica; every ledger balanced."""
    import psycopg

    acks = [json.loads(line) for line in acks_path.read_text().splitlines()] if acks_path.exists() else []
    by_id = {ack["settlement_id"]: ack for ack in acks}
    with psycopg.connect(db, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT settlement_id, total_fen, fund_fen, account_fen FROM settlements WHERE settlement_id = ANY(%s)",
            (list(by_id),),
        ).fetchall()
        found = {sid: (total, fund, account) for sid, total, fund, account in rows}
        missing = sorted(set(by_id) - set(found))
        differing = sorted(
            sid
            for sid, ack in by_id.items()
            if sid in found and found[sid] != (ack["total_fen"], ack["fund_fen"], ack["account_fen"])
        )
        ledgers = {name: _count(conn, sql) for name, sql in LEDGER_CHECKS.items()}
        settlements = _count(conn, "SELECT count(*) FROM settlements")
    unreadable = 0
    sample = list(by_id)[:: max(1, len(by_id) // 50)]  # a spread of them, through each replica's API
    for replica in cluster.replicas:
        merchant_of = {sid: by_id[sid]["merchant_id"] for sid in sample}
        for sid, merchant in merchant_of.items():
            with PharmacyClient(
                replica.target, merchant_id=merchant, options=cluster.options(f"merchant:{merchant}")
            ) as pos:
                unreadable += pos.get_settlement(sid).settlement_id != sid
    return {
        "acknowledged": len(by_id),
        "in_database": settlements,
        "missing": missing[:20],
        "missing_count": len(missing),
        "amounts_differ": differing[:20],
        "read_back_per_replica": len(sample),
        "unreadable": unreadable,
        "ledger_violations": ledgers,
        "ok": not missing and not differing and not unreadable and not any(ledgers.values()) and bool(by_id),
    }


def _count(conn: Any, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


LEDGER_CHECKS = {
    "card_balance_not_sum_of_ledger": (
        "SELECT count(*) FROM cards c LEFT JOIN (SELECT card_no, SUM(delta_fen) AS s FROM ledger GROUP BY card_no) l "
        "USING (card_no) WHERE c.balance_fen <> COALESCE(l.s, 0)"
    ),
    "card_balance_not_last_ledger_row": (
        "SELECT count(*) FROM cards c JOIN (SELECT DISTINCT ON (card_no) card_no, balance_after_fen FROM ledger "
        "ORDER BY card_no, entry_id DESC) l USING (card_no) WHERE c.balance_fen <> l.balance_after_fen"
    ),
    "settlement_shares_not_total": (
        "SELECT count(*) FROM settlements WHERE total_fen <> fund_fen + account_fen + self_pay_fen"
    ),
    "settlement_account_not_card_ledger": (
        "SELECT count(*) FROM settlements s LEFT JOIN (SELECT ref, -SUM(delta_fen) AS paid FROM ledger "
        "WHERE kind = 'SETTLE' GROUP BY ref) l ON l.ref = s.settlement_id WHERE s.account_fen <> COALESCE(l.paid, 0)"
    ),
    "settlement_fund_not_fund_ledger": (
        "SELECT count(*) FROM settlements s LEFT JOIN (SELECT settlement_id, SUM(delta_fen) AS paid FROM fund_ledger "
        "WHERE kind = 'SETTLE' GROUP BY settlement_id) f USING (settlement_id) WHERE s.fund_fen <> COALESCE(f.paid, 0)"
    ),
}


def render(result: dict[str, Any]) -> str:
    moments, slo, checks = result["moments"], result["slo"], result["settlements"]
    zero = moments.get("kill", 0.0)
    lines = [
        f"failover run: {result['verdict']}",
        f"replicas {', '.join(result['replicas'])}; killed replica {result['victim']} "
        f"({result['replicas'][result['victim']]})",
    ]
    for name, at in moments.items():
        lines.append(
            f"  {name:>16}: {time.strftime('%H:%M:%S', time.gmtime(at))}.{int(at % 1 * 1000):03d} UTC "
            f"(kill {at - zero:+.1f} s)"
        )
    lines.append(
        f"SLO: {slo.get('verdict')}; checkout p50 {slo.get('checkout_p50_s')} s, p99 {slo.get('checkout_p99_s')} s "
        f"(limits {slo.get('limits')}); failures {slo.get('failures')} of {slo.get('requests')} requests "
        f"= {slo.get('failure_ratio')} (budget {slo.get('failure_budget')}); wrong verdicts {slo.get('wrong')}"
    )
    lines.append(
        f"settlements: {checks['acknowledged']} acknowledged, {checks['missing_count']} missing, "
        f"{len(checks['amounts_differ'])} with other amounts, {checks['unreadable']} unreadable "
        f"({checks['read_back_per_replica']} read back on each replica); "
        f"ledger violations {checks['ledger_violations']}"
    )
    replays = result["replays"]
    lines.append(
        f"tokens: {replays['accepted_first']} accepted once by one replica and shown to the others: "
        f"{replays['replays_refused']} REPLAYED, {replays['accepted_twice']} accepted twice; "
        f"{replays['accepted_while_victim_down']} accepted while replica {result['victim']} was down, "
        f"{replays['refused_by_restarted']} of them refused by it after its restart; "
        f"load generator's replayed tokens refused: {slo.get('replays_refused')}"
    )
    lines.append(f"Verify answered per replica (the victim's count since its restart): {result['verify_per_replica']}")
    lines.append("timeline (s from the kill: requests/s, failures/s, p99 ms of Locust's 10 s window):")
    for row in result["timeline"]:
        if -5 <= row["t_from_kill_s"] <= 15 or row["failures_per_s"]:
            lines.append(
                f"  {row['t_from_kill_s']:+4d} s  {row['requests_per_s']:7.1f}  {row['failures_per_s']:5.1f}  "
                f"{row['p99_ms']}"
            )
    return "\n".join(lines) + "\n"


def slo_summary(report_json: Path) -> dict[str, Any]:
    """The figures of Locust's SLO report that the failover verdict states."""
    if not report_json.exists():
        return {"verdict": "no report"}
    report = json.loads(report_json.read_text())
    checkout, requests = report.get("checkout", {}), report.get("requests", {})
    return {
        "verdict": report.get("verdict"),
        "checkout_p50_s": checkout.get("p50_s"),
        "checkout_p99_s": checkout.get("p99_s"),
        "limits": report.get("thresholds"),
        "failures": requests.get("failures"),
        "requests": requests.get("count"),
        "failure_ratio": requests.get("failure_ratio"),
        "failure_budget": (report.get("thresholds") or {}).get("failure_ratio"),
        "wrong": (report.get("wrong_verdicts") or {}).get("count"),
        "breaches": report.get("breaches"),
        "transport_errors": report.get("transport_errors"),
        "replays_refused": (report.get("verdict_checks") or {}).get("hostile replayed expects REPLAYED"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest failover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill-at", type=float, default=15.0, help="seconds after the load starts (default 15)")
    parser.add_argument("--restart-at", type=float, default=25.0, help="seconds after the load starts (default 25)")
    parser.add_argument("--victim", type=int, default=1, choices=[0, 1, 2], help="replica to kill (default 1)")
    add_run_arguments(parser, "40s")
    add_merchant_counts(parser)
    args, passthrough = parser.parse_known_args(argv)
    passthrough = [a for a in passthrough if a != "--"]
    run_seconds = parse_seconds(args.run_time)
    if not 0 < args.kill_at < args.restart_at < run_seconds:
        parser.error("need 0 < --kill-at < --restart-at < --run-time")
    reports = Path(args.reports).resolve()
    prefix = str(reports / "failover")
    acks = reports / "failover.acks.jsonl"
    acks.unlink(missing_ok=True)
    tag = secrets.token_hex(3)
    os.chdir(ROOT)
    with fresh_database() as db, Cluster(3, db=db, log_dir=reports / "failover") as cluster:
        print(f"3 replicas: {cluster.target} (logs in {reports / 'failover'})", flush=True)
        make_certificates(cluster, tag, args.pharmacies, args.hospitals)
        probe_seed = seed_deployment(cluster.targets[0], cards=40, ecards=30, lost_ecards=0, pharmacies=1,
                                     hospitals=1, tag=f"{tag}p", options_for=cluster.options, log=lambda line: None)
        command = locust_command(
            LOCUSTFILES,
            "--host",
            cluster.target,
            "--config",
            str(Path(args.config).resolve()),
            "--headless",
            "--run-time",
            args.run_time,
            "--csv",
            prefix,
            "--csv-full-history",
            "--html",
            f"{prefix}.html",
            "--report-prefix",
            prefix,
            "--tls-ca",
            str(cluster.pki.ca),
            "--tls-cert-dir",
            str(cluster.pki.folder),
            "--tls-server-name",
            SERVER_NAME,
            "--seed-tag",
            tag,
            "--pharmacies",
            str(args.pharmacies),
            "--hospitals",
            str(args.hospitals),
            *passthrough,
        )
        schedule = KillSchedule(cluster, args.victim, args.kill_at, args.restart_at)
        probe = ReplayProbe(cluster.targets, probe_seed, cluster.options, victim=args.victim,
                            load_started=lambda: "load_seen" in schedule.moments,
                            back_after_restart=lambda: "restart_serving" in schedule.moments)
        schedule.start()
        probe.start()
        os.environ["ECARD_FAILOVER_ACKS"] = str(acks)
        try:
            status = run_bounded([command], run_seconds + SETUP_ALLOWANCE_S)
        finally:
            os.environ.pop("ECARD_FAILOVER_ACKS", None)
            schedule.stop.set()
            probe.stop.set()
            schedule.join(timeout=60)
            probe.join(timeout=30)
            probe.close()
        settlements = check_settlements(cluster, db, acks)
        result = {
            "replicas": cluster.targets,
            "victim": args.victim,
            "moments": schedule.moments,
            "schedule_error": schedule.error,
            "locust_status": status,
            "slo": slo_summary(Path(f"{prefix}.report.json")),
            "settlements": settlements,
            "replays": probe.result(),
            "verify_per_replica": [replica.requests(VERIFY) for replica in cluster.replicas],
            "timeline": timeline(Path(f"{prefix}_stats_history.csv"), schedule.moments),
        }
    ok = (status == 0 and settlements["ok"] and result["replays"]["ok"] and schedule.error is None
          and "restart_serving" in schedule.moments)
    result["verdict"] = "PASS" if ok else "FAIL"
    Path(f"{prefix}.failover.json").write_text(json.dumps(result, indent=1) + "\n")
    text = render(result)
    Path(f"{prefix}.failover.txt").write_text(text)
    print(text + f"(reports: {prefix}.failover.txt, {prefix}.report.txt)", flush=True)
    if schedule.error:
        print(f"kill schedule failed: {schedule.error}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
