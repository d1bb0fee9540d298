"""The statements benchmark (loadtest.bench.statements) on the machine's PostgreSQL, small: it runs,
its generated day adds up (DailyTotals equals a direct SUM over the rows), and it reports each round."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench import statements


def test_the_statement_bench_runs_and_its_totals_match_the_rows(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert statements.main(["--settlements", "3000", "--rounds", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["totals_match_direct_sum"] and report["busy_day"]["settlements"] == 3000
    assert report["busy_day"]["terminals"] == 40 and len(report["busy_day"]["seconds"]) == 2
