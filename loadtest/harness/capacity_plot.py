"""The capacity search as a picture: PREFIX.capacity.png beside Locust's PREFIX.html.

Top: the achieved rate (visits and checkouts per second) against the arrival rate of each step, with
the line where achieved equals offered. Bottom: checkout p50 and p99 of each step, with the SLO
thresholds as horizontal lines. The knee, the highest arrival rate whose step held the SLO, is a
vertical line on both; the step that broke it is marked in red. A search that held up to its cap
(--step-max-rate) found no knee and says so, in the title as in the text report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def capacity_figure(report: dict[str, Any]) -> Figure:
    """The figure of a capacity report (report.build's dict with a "capacity" part)."""
    capacity, thresholds = report["capacity"], report["thresholds"]
    steps = capacity["steps"]
    rates = [s["arrival_rate"] for s in steps]
    figure, (rate_axes, time_axes) = plt.subplots(2, 1, sharex=True, figsize=(8, 7), constrained_layout=True)
    knee, broke = capacity.get("highest_rate_held"), capacity.get("broke_at")
    found = ("no step held the SLO" if knee is None else f"capacity {knee:g} visits/s" if broke is not None
             else f"capacity not found below the cap: every step held, up to {knee:g} visits/s")
    figure.suptitle(f"ecard capacity search: {report['target']}\n{found}")

    top = max([*rates, *(s["visits_per_s"] for s in steps), 1.0])
    rate_axes.plot([0, top], [0, top], color="0.7", linestyle=":", label="achieved = offered")
    rate_axes.plot(rates, [s["visits_per_s"] for s in steps], marker="o", label="visits/s achieved")
    rate_axes.plot(rates, [s["checkouts_per_s"] for s in steps], marker="s", label="checkouts/s achieved")
    rate_axes.set_ylabel("achieved rate (/s)")

    for key, name, threshold in (("checkout_p50_s", "p50", "checkout_p50_s"),
                                 ("checkout_p99_s", "p99", "checkout_p99_s")):
        seconds = [float("nan") if s[key] is None else s[key] for s in steps]  # a step without a checkout
        line = time_axes.plot(rates, seconds, marker="o", label=f"checkout {name}")[0]
        time_axes.axhline(thresholds[threshold], color=line.get_color(), linestyle="--",
                          label=f"SLO {name} {thresholds[threshold]:g} s")
    time_axes.set_yscale("log")  # milliseconds below the knee and seconds past it, on one axis
    time_axes.set_ylabel("checkout time, scan to settled (s, log)")
    time_axes.set_xlabel("arrival rate (visits/s)")

    for axes in (rate_axes, time_axes):
        if knee is not None:
            label = (f"knee (highest rate held): {knee:g} visits/s" if broke is not None
                     else f"the cap, held: {knee:g} visits/s (no knee below it)")
            axes.axvline(knee, color="green", linestyle="-.", label=label)
        if broke is not None:
            axes.axvline(broke, color="red", linestyle=":", label=f"broke at {broke:g} visits/s")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small", loc="upper left")
    return figure


def write_capacity_plot(report: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    figure = capacity_figure(report)
    try:
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path
