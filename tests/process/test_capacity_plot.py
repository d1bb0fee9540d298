"""`make loadtest-capacity`'s plot: arrival rate against achieved rate and checkout p50/p99, with the
SLO lines and the knee, written beside the HTML report by a real (short) capacity search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loadtest.harness.capacity_plot import capacity_figure

ROOT = Path(__file__).resolve().parents[2]
SMALL_SEED = ["--cards", "3000", "--ecards", "300", "--lost-ecards", "10", "--pharmacies", "5", "--hospitals", "2"]


def step(rate: float, visits: float, checkouts: float, p50: float | None, p99: float | None, held: bool) -> dict:
    return {"arrival_rate": rate, "visits_per_s": visits, "checkouts_per_s": checkouts, "checkout_p50_s": p50,
            "checkout_p99_s": p99, "held": held}


def report_with(steps: list[dict[str, Any]], held: float | None, broke: float | None) -> dict[str, Any]:
    return {"target": "127.0.0.1:1", "thresholds": {"checkout_p50_s": 1.0, "checkout_p99_s": 3.0},
            "capacity": {"steps": steps, "highest_rate_held": held, "broke_at": broke}}


def lines_by_label(figure: Any) -> dict[str, list[tuple[list[float], list[float]]]]:
    found: dict[str, list[tuple[list[float], list[float]]]] = {}
    for axes in figure.axes:
        for line in axes.get_lines():
            found.setdefault(line.get_label(), []).append((list(line.get_xdata()), list(line.get_ydata())))
    return found


def test_the_figure_draws_each_step_the_slo_lines_and_the_knee() -> None:
    steps = [step(20, 20.1, 12.0, 0.010, 0.030, True), step(40, 39.8, 24.1, 0.012, 0.090, True),
             step(60, 48.0, 29.0, 1.6, 4.2, False)]
    lines = lines_by_label(capacity_figure(report_with(steps, held=40, broke=60)))
    assert lines["visits/s achieved"] == [([20, 40, 60], [20.1, 39.8, 48.0])]
    assert lines["checkouts/s achieved"] == [([20, 40, 60], [12.0, 24.1, 29.0])]
    assert lines["checkout p50"] == [([20, 40, 60], [0.010, 0.012, 1.6])]
    assert lines["checkout p99"] == [([20, 40, 60], [0.030, 0.090, 4.2])]
    assert [y for _, y in lines["SLO p50 1 s"]] == [[1.0, 1.0]] and [y for _, y in lines["SLO p99 3 s"]] == [[3.0, 3.0]]
    assert [x for x, _ in lines["knee (highest rate held): 40 visits/s"]] == [[40, 40], [40, 40]]  # on both plots
    assert [x for x, _ in lines["broke at 60 visits/s"]] == [[60, 60], [60, 60]]


def test_a_search_that_held_up_to_its_cap_says_no_knee_was_found() -> None:
    steps = [step(20, 20.1, 12.0, 0.010, 0.030, True), step(40, 39.8, 24.1, 0.012, 0.090, True)]
    figure = capacity_figure(report_with(steps, held=40, broke=None))
    assert "capacity not found below the cap: every step held, up to 40 visits/s" in figure._suptitle.get_text()
    lines = lines_by_label(figure)
    assert not any(label.startswith("knee") for label in lines)
    assert "the cap, held: 40 visits/s (no knee below it)" in lines


def test_a_search_where_no_step_held_has_no_knee() -> None:
    lines = lines_by_label(capacity_figure(report_with([step(20, 15.0, 9.0, None, None, False)], None, 20)))
    assert not any(label.startswith("knee") for label in lines)
    assert "broke at 20 visits/s" in lines


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_capacity_search_writes_the_plot_beside_the_html_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtest", "capacity", "--run-time", "40s", "--reports", str(tmp_path), "--",
         *SMALL_SEED, "--step-start-rate", "10", "--step-rate-increase", "20", "--step-duration", "6",
         "--step-max-rate", "50"],
        cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    plot, html = tmp_path / "capacity.capacity.png", tmp_path / "capacity.html"
    assert html.is_file() and plot.is_file()
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size == (800, 700)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 24) or []) > 50  # drawn, not blank
    report = json.loads((tmp_path / "capacity.report.json").read_text())
    steps = report["capacity"]["steps"]
    # 10, 30 and 50 visits/s; on a loaded machine a step may break first, and the search stops there.
    assert report["capacity"]["plot"] == str(plot) and [s["arrival_rate"] for s in steps] == [10, 30, 50][:len(steps)]
    assert len(steps) == 3 or not steps[-1]["held"], steps
    assert f"plot: {plot}" in (tmp_path / "capacity.report.txt").read_text()
