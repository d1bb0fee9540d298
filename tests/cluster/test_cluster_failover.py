"""The failover load run (`python -m loadtest failover`), short: 30 s of the steady workload on three
replicas in network namespaces, replica 1 SIGKILLed at 10 s and restarted at 20 s. Needs root,
PostgreSQL and Redis; fails without them.

The gate here is wider than the SLO's (failures 1 % instead of 0.1 %, checkout p99 6 s instead of 3 s):
30 s is ~4,000 requests, so the calls in flight at the kill alone can be 0.1 %, and beside the rest of
the suite on two cores the p99 reached 3.1 s once. `make loadtest-failover` (120 s) holds the real SLO.
Nothing is widened for what must never happen: a lost settlement, an unbalanced ledger, a token
accepted twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.netns, pytest.mark.slow, pytest.mark.serial]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(400)
def test_a_replica_killed_mid_load_keeps_the_slo_and_loses_nothing(tmp_path: Path, redis_url: str) -> None:
    command = [sys.executable, "-m", "loadtest", "failover", "--run-time", "30s", "--kill-at", "10",
               "--restart-at", "20", "--reports", str(tmp_path), "--", "--cards", "2000",
               "--slo-failure-ratio", "0.01", "--slo-checkout-p99", "6"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=380)
    report_path = tmp_path / "failover.failover.json"
    assert report_path.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    moments = report["moments"]
    assert moments["load_seen"] < moments["kill"] < moments["restart_begun"] < moments["restart_serving"]
    assert report["slo"]["verdict"] == "PASS", report["slo"]
    assert report["slo"]["failure_ratio"] <= report["slo"]["failure_budget"]
    settlements = report["settlements"]
    assert settlements["acknowledged"] > 100 and settlements["missing_count"] == 0, settlements
    assert not settlements["amounts_differ"] and settlements["unreadable"] == 0
    assert not any(settlements["ledger_violations"].values()), settlements["ledger_violations"]
    replays = report["replays"]
    assert replays["accepted_twice"] == 0 and replays["replays_refused"] > 0, replays
    assert replays["accepted_while_victim_down"] > 0
    assert replays["refused_by_restarted"] == replays["accepted_while_victim_down"], replays
    assert report["verify_per_replica"][1] > 0, "the restarted replica got no traffic"
    assert any(row["t_from_kill_s"] == 0 for row in report["timeline"])
    assert run.returncode == 0, run.stdout[-2000:]
    assert "kill: " in (tmp_path / "failover.failover.txt").read_text()
