"""The run's report, beside Locust's CSV and HTML: PREFIX.report.json for machines, .report.txt for people,
and for a capacity search PREFIX.capacity.png (loadtest/harness/capacity_plot.py).

It states what the SLO is about: checkout p50/p99 at the achieved arrival rate, how many scheduled
starts were late, verdict counts by reason, wrong verdicts apart from transport errors, the gate's
verdict with the threshold that failed, and for a capacity search the highest rate that held.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.stats import StatsError

from loadtest.grpc_user import REQUEST_TYPE as GRPC
from loadtest.harness.run_context import RunContext
from loadtest.harness.slo import Breach, Measurement, evaluate
from loadtest.shapes import CHECKOUT, rpc_counts

_ERROR_TEXT = re.compile(r"^\w+\('(.*)'\)$")


def measurement(environment: Environment, context: RunContext) -> Measurement:
    tally = context.tally
    rpcs, failed = rpc_counts(environment.stats)
    return Measurement(
        checkouts=tally.checkouts,
        checkout_p50_s=tally.checkout_percentile(0.5),
        checkout_p99_s=tally.checkout_percentile(0.99),
        requests=rpcs,
        failures=failed,
        wrong_verdicts=tally.wrong_verdicts,
    )


def gate(environment: Environment, context: RunContext) -> list[Breach]:
    """The thresholds this run broke. A capacity search passes when some step held and no verdict was wrong."""
    thresholds = context.settings.thresholds
    if context.capacity is not None:
        breaches = []
        if context.capacity.get("highest_rate_held") is None:
            breaches.append(Breach("capacity: no step held the SLO", None, context.settings.step_start_rate, "/s"))
        if context.tally.wrong_verdicts > thresholds.wrong_verdicts:
            breaches.append(Breach("slo-wrong-verdicts", context.tally.wrong_verdicts, thresholds.wrong_verdicts))
    else:
        breaches = evaluate(thresholds, measurement(environment, context))
    harness_errors = sum(e["count"] for e in environment.runner.exceptions.values()) if environment.runner else 0
    if harness_errors:
        breaches.append(Breach("harness-errors (see the log)", harness_errors, 0))
    return breaches


def _error_text(error: object) -> str:
    text = StatsError.parse_error(error)  # type: ignore[arg-type]
    match = _ERROR_TEXT.match(text)
    return match.group(1) if match else text


def build(environment: Environment, context: RunContext, breaches: list[Breach]) -> dict[str, Any]:
    settings, tally, stats = context.settings, context.tally, environment.stats
    measured = measurement(environment, context)
    started = context.started_at or stats.total.start_time
    duration = max((context.stopped_at or time.time()) - started, 1e-9)
    checkout = stats.entries.get(CHECKOUT)
    starts, late = sum(tally.starts.values()), sum(tally.late.values())
    transport = {
        f"{e.name} {_error_text(e.error)}": e.occurrences for e in stats.errors.values() if e.method == GRPC
    }
    rpcs = {
        name: {
            "count": entry.num_requests,
            "failures": entry.num_failures,
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p99_ms": entry.get_response_time_percentile(0.99),
            "per_s": round(entry.num_requests / duration, 2),
        }
        for (name, method), entry in sorted(stats.entries.items())
        if method == GRPC
    }
    checks = {
        name: {"count": entry.num_requests, "wrong": entry.num_failures}
        for (name, method), entry in sorted(stats.entries.items())
        if method == "verdict"
    }
    report: dict[str, Any] = {
        "verdict": "PASS" if not breaches else "FAIL",
        "breaches": [str(b) for b in breaches],
        "failed_thresholds": [b.name for b in breaches],
        "mode": "capacity" if context.capacity is not None else "steady",
        "target": environment.host,
        "workers": len(context.workers),
        "duration_s": round(duration, 1),
        "thresholds": settings.thresholds.as_dict(),
        "arrival_rate": {
            "target_visits_per_s": settings.arrival_rate if context.capacity is None else None,
            "achieved_visits_per_s": round(starts / duration, 2),
            "achieved_checkouts_per_s": round(measured.checkouts / duration, 2),
            "visit_interval_s": settings.visit_interval,
            "arrivals": settings.arrivals,
        },
        "checkout": {  # visits that reached the checkout; times exact (HdrHistogram), from the scheduled start
            "count": measured.checkouts,
            "failures": checkout.num_failures if checkout else 0,
            "failure_ratio": round((checkout.num_failures if checkout else 0) / measured.checkouts, 6)
            if measured.checkouts else 0.0,
            "p50_s": measured.checkout_p50_s,
            "p90_s": tally.checkout_percentile(0.9),
            "p99_s": measured.checkout_p99_s,
            "max_s": tally.checkout_percentile(1.0),
        },
        "late_starts": {
            "count": late,
            "of_scheduled": starts,
            "ratio": round(late / starts, 5) if starts else 0.0,
            "tolerance_s": settings.late_tolerance,
            "max_lateness_s": round(tally.max_lateness_s, 3),
            "by_scenario": dict(sorted(tally.late.items())),
        },
        "scheduled_starts_by_scenario": dict(sorted(tally.starts.items())),
        "verdicts_by_reason": dict(sorted(tally.verdicts.items(), key=lambda kv: -kv[1])),
        "verdict_checks": checks,
        "wrong_verdicts": {"count": tally.wrong_verdicts, "by_case": dict(sorted(tally.wrong.items()))},
        "transport_errors": {"count": sum(transport.values()), "by_rpc": transport},
        "requests": {  # gRPC calls only (the SLO's failure ratio); visits are under "checkout"
            "over": "RPCs",
            "count": measured.requests,
            "failures": measured.failures,
            "failure_ratio": round(measured.failure_ratio, 6),
        },
        "rpcs": rpcs,
        "seed": _seed_summary(context),
    }
    if context.capacity is not None:
        report["capacity"] = context.capacity
    return report


def _seed_summary(context: RunContext) -> dict[str, Any]:
    seed = context.seed
    if seed is None:
        return {}
    return {"tag": seed.tag, "cards_enrolled": seed.cards_enrolled, "ecards": len(seed.ecards),
            "lost_ecards": len(seed.lost_ecards), "pharmacies": len(seed.pharmacies),
            "hospitals": len(seed.hospitals), "timings_s": {k: round(v, 2) for k, v in seed.timings_s.items()}}


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def render(report: dict[str, Any]) -> str:
    """The report for people: the verdict first, then the figures it rests on."""
    t, c, a, late = report["thresholds"], report["checkout"], report["arrival_rate"], report["late_starts"]
    lines = [f"SLO {report['verdict']}" + (": " + "; ".join(report["breaches"]) if report["breaches"] else "")]
    if report["mode"] == "capacity":
        cap = report["capacity"]
        held = cap["highest_rate_held"]
        found = ("none" if held is None else f"not found below the cap: every step held, up to {held:g} visits/s"
                 if cap.get("broke_at") is None else f"{held:g} visits/s")
        lines.append(f"capacity: highest arrival rate that held the SLO: {found} ({cap['stopped_because']})"
                     + (f"; plot: {cap['plot']}" if cap.get("plot") else ""))
        for step in cap["steps"]:
            limited = (f"  (the load generator fell behind on {step['late_ratio']:.1%} of starts: the figures include "
                       f"its delay; add workers or move it off the server's host)") if step["generator_limited"] else ""
            lines.append(
                f"  step {step['arrival_rate']:>7g} visits/s: {step['checkouts_per_s']:>7.2f} checkouts/s, "
                f"p50 {_s(step['checkout_p50_s'])}, p99 {_s(step['checkout_p99_s'])}, "
                f"failures {step['failure_ratio']:.3%}, wrong verdicts {step['wrong_verdicts']}, "
                f"late starts {step['late_starts']} -> {'held' if step['held'] else 'BROKE'}{limited}"
            )
    target = a["target_visits_per_s"]
    lines += [
        f"target {report['target']}, {report['duration_s']} s, "
        + (f"{report['workers']} workers" if report["workers"] else "one load process"),
        f"arrival rate: {a['achieved_visits_per_s']} visits/s achieved"
        + (f" of {target:g} targeted" if target is not None else "")
        + f" ({a['arrivals']}), of which {a['achieved_checkouts_per_s']} checkouts/s",
        f"checkout (scan to settled, from the scheduled start): {c['count']} checkouts, {c['failures']} failed; "
        f"p50 {_s(c['p50_s'])} (limit {_s(t['checkout_p50_s'])}), p90 {_s(c['p90_s'])}, "
        f"p99 {_s(c['p99_s'])} (limit {_s(t['checkout_p99_s'])}), max {_s(c['max_s'])}",
        f"late starts: {late['count']} of {late['of_scheduled']} scheduled ({late['ratio']:.2%}) more than "
        f"{_s(late['tolerance_s'])} late; the latest {_s(late['max_lateness_s'])}",
        f"RPCs: {report['requests']['count']}, failed {report['requests']['failures']} "
        f"(failed RPCs / RPCs {report['requests']['failure_ratio']:.4%}, limit {t['failure_ratio']:.4%}); "
        f"visits: {c['count']} checkouts, {c['failures']} failed ({c.get('failure_ratio', 0.0):.4%} of checkouts)",
        f"wrong verdicts: {report['wrong_verdicts']['count']} (limit {t['wrong_verdicts']})",
    ]
    lines += [f"  {n:6d}  {case}" for case, n in report["wrong_verdicts"]["by_case"].items()]
    lines.append(f"transport errors: {report['transport_errors']['count']}")
    lines += [f"  {n:6d}  {what}" for what, n in report["transport_errors"]["by_rpc"].items()]
    lines.append("verdicts by reason:")
    lines += [f"  {n:6d}  {reason}" for reason, n in report["verdicts_by_reason"].items()]
    lines.append("RPCs:")
    lines += [f"  {r['count']:6d}  {name}: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['failures']} failed"
              for name, r in report["rpcs"].items()]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], prefix: str) -> tuple[Path, Path]:
    base = Path(prefix)
    base.parent.mkdir(parents=True, exist_ok=True)
    json_path, text_path = Path(f"{prefix}.report.json"), Path(f"{prefix}.report.txt")
    if report.get("mode") == "capacity":
        from loadtest.harness.capacity_plot import write_capacity_plot  # matplotlib, only for a capacity search

        report["capacity"]["plot"] = str(write_capacity_plot(report, f"{prefix}.capacity.png"))
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    text_path.write_text(render(report), encoding="utf-8")
    return json_path, text_path
