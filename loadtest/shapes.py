"""Load shapes in arrival rates: users are counters, each with visits at `--visit-interval` on average,
so `users = rate x interval` sets the rate. Shapes run on the master (or the single local process).

- SteadyArrivals holds `--arrival-rate` until `--run-time` ends the run.
- StepArrivals raises the rate from `--step-start-rate` by `--step-rate-increase` every `--step-duration`
  seconds, judges each step against the SLO thresholds, stops at the first step that breaks them
  (or past `--step-max-rate`) and reports the highest rate that held.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from locust import LoadTestShape
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner

from loadtest.grpc_user import REQUEST_TYPE as GRPC
from loadtest.harness.run_context import RunContext, context_of
from loadtest.harness.slo import Measurement, evaluate
from loadtest.harness.tally import Tally

log = logging.getLogger("loadtest")
CHECKOUT = ("scan to settled", "checkout")
"""(name, request type) of the checkout measurement in Locust's statistics."""
GENERATOR_LIMITED_LATE_RATIO = 0.05
"""A step where more starts than this were late measured the load generator as much as the server."""


def spawn_rate(users: int) -> float:
    return float(max(1, min(users, 100)))


def run_time_over(shape: LoadTestShape) -> bool:
    """True once --run-time has passed. Headless Locust starts its own --run-time timer only after a
    shape ends, so a shape must honour it itself (that is what use_common_options is for)."""
    assert shape.runner is not None
    options = shape.runner.environment.parsed_options
    run_time = getattr(options, "run_time", None)
    return bool(run_time) and shape.get_run_time() >= run_time


class SteadyArrivals(LoadTestShape):
    """A constant arrival rate, `--arrival-rate` visits per second, for `--run-time` (or until stopped)."""

    use_common_options = True  # --users and --spawn-rate are derived from the rate; --run-time ends it

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        if run_time_over(self):
            return None
        settings = context_of(self.runner.environment).settings
        users = settings.users_for(settings.arrival_rate)
        return users, spawn_rate(users)


def rpc_counts(stats: Any) -> tuple[int, int]:
    """(gRPC calls, failed gRPC calls) of Locust's statistics: the rows of the gRPC request type only
    (not the visits, not the harness's verdict checks)."""
    rows = [entry for (_, method), entry in stats.entries.items() if method == GRPC]
    return sum(e.num_requests for e in rows), sum(e.num_failures for e in rows)


@dataclass
class _Mark:
    """Cumulative counters at one instant, to measure a window as the difference of two marks."""

    at: float
    checkout_failures: int
    requests: int
    failures: int
    tally: Tally

    @classmethod
    def take(cls, runner: Any, context: RunContext) -> _Mark:
        stats = runner.environment.stats
        checkout = stats.entries.get(CHECKOUT)
        rpcs, failed = rpc_counts(stats)
        return cls(
            at=time.monotonic(),
            checkout_failures=checkout.num_failures if checkout else 0,
            requests=rpcs,
            failures=failed,
            tally=context.tally.snapshot(),
        )


def judge_window(rate: float, start: _Mark, end: _Mark, context: RunContext) -> dict[str, Any]:
    """One step's figures and verdict, from the counters at its start and end (checkout times exact)."""
    tally = end.tally.since(start.tally)
    checkouts = tally.checkouts
    measured = Measurement(
        checkouts=checkouts,
        checkout_p50_s=tally.checkout_percentile(0.5),
        checkout_p99_s=tally.checkout_percentile(0.99),
        requests=end.requests - start.requests,
        failures=end.failures - start.failures,
        wrong_verdicts=tally.wrong_verdicts,
    )
    breaches = evaluate(context.settings.thresholds, measured)
    seconds = max(end.at - start.at, 1e-9)
    starts, late = sum(tally.starts.values()), sum(tally.late.values())
    late_ratio = late / starts if starts else 0.0
    return {
        "arrival_rate": rate,
        "window_s": round(seconds, 1),
        "visits_per_s": round(starts / seconds, 2),
        "checkouts": checkouts,
        "checkouts_per_s": round(checkouts / seconds, 2),
        "checkout_failures": end.checkout_failures - start.checkout_failures,
        "checkout_p50_s": measured.checkout_p50_s,
        "checkout_p99_s": measured.checkout_p99_s,
        "failure_ratio": round(measured.failure_ratio, 6),  # failed RPCs / RPCs
        "wrong_verdicts": measured.wrong_verdicts,
        "late_starts": late,
        "late_ratio": round(late_ratio, 4),
        "generator_limited": late_ratio > GENERATOR_LIMITED_LATE_RATIO,
        "held": not breaches,
        "breaches": [str(b) for b in breaches],
    }


class StepArrivals(LoadTestShape):
    """The capacity search: step the arrival rate up until a step breaks the SLO."""

    use_common_options = True  # --run-time stays a hard upper bound on the whole search

    def __init__(self) -> None:
        super().__init__()
        self._rate = 0.0
        self._step_started = 0.0
        self._mark: _Mark | None = None

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        context = context_of(self.runner.environment)
        settings = context.settings
        now = self.get_run_time()
        if self._rate == 0.0:
            self._start_search(context)
            self._begin_step(settings.step_start_rate, now)
        if run_time_over(self):
            return None  # context.capacity says the run ended before a step broke
        # Skip the ramp of each step, and in distributed runs the workers' report delay, before measuring.
        warmup = 2.0 + (WORKER_REPORT_INTERVAL + 1.0 if isinstance(self.runner, MasterRunner) else 0.0)
        if self._mark is None and now >= self._step_started + min(warmup, settings.step_duration / 2):
            self._mark = _Mark.take(self.runner, context)
        if now >= self._step_started + settings.step_duration and self._mark is not None:
            step = judge_window(self._rate, self._mark, _Mark.take(self.runner, context), context)
            assert context.capacity is not None
            context.capacity["steps"].append(step)
            log.info("capacity step %.4g visits/s: %s", self._rate, "held" if step["held"] else step["breaches"])
            if not step["held"]:
                context.capacity["broke_at"] = self._rate
                context.capacity["stopped_because"] = "the SLO broke"
                return None
            context.capacity["highest_rate_held"] = self._rate
            next_rate = self._rate + settings.step_rate_increase
            if next_rate > settings.step_max_rate or settings.step_rate_increase <= 0:
                context.capacity["stopped_because"] = f"held up to --step-max-rate {settings.step_max_rate:g}"
                return None
            self._begin_step(next_rate, now)
        users = settings.users_for(self._rate)
        return users, spawn_rate(users)

    def _start_search(self, context: RunContext) -> None:
        settings = context.settings
        context.capacity = {
            "step_start_rate": settings.step_start_rate,
            "step_rate_increase": settings.step_rate_increase,
            "step_duration_s": settings.step_duration,
            "step_max_rate": settings.step_max_rate,
            "steps": [],
            "highest_rate_held": None,
            "broke_at": None,
            "stopped_because": "the run ended (--run-time) before a step broke",
        }

    def _begin_step(self, rate: float, now: float) -> None:
        self._rate = rate
        self._step_started = now
        self._mark = None
