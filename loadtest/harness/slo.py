"""The SLO: what a run must show, and which threshold it broke. Pure; no Locust, no network.

A checkout is scan to settled, timed from its scheduled start; its percentiles come from every
checkout's exact time (the tally's HdrHistogram), not Locust's rounded buckets. The failure ratio is
over RPCs: failed gRPC calls / gRPC calls, never mixed with visits (checkouts, counted apart) or with
the harness's verdict checks. A wrong verdict is a Verify answer other than the one the scenario
expected, e.g. a forged token ACCEPTED.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


class WrongAnswer(Exception):
    """The server answered, but not what the scenario expects (a forged token accepted, money not adding up)."""


@dataclass(frozen=True)
class Thresholds:
    checkout_p99_s: float = 3.0
    """Slowest checkout among the fastest 99 %, in seconds."""
    checkout_p50_s: float = 1.0
    """Median checkout, in seconds."""
    failure_ratio: float = 0.001
    """Failed RPCs over all RPCs (gRPC calls only: not visits, not verdict checks)."""
    wrong_verdicts: int = 0
    """Verdicts other than the expected one (a forged token accepted, a good one rejected)."""

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """What a run (or one capacity step) achieved."""

    checkouts: int
    checkout_p50_s: float | None
    checkout_p99_s: float | None
    requests: int
    """gRPC calls."""
    failures: int
    """gRPC calls that failed."""
    wrong_verdicts: int

    @property
    def failure_ratio(self) -> float:
        """Failed RPCs / RPCs."""
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Breach:
    """One threshold a run did not hold: `name` is the option that sets it."""

    name: str
    measured: float | None
    limit: float
    unit: str = ""

    def __str__(self) -> str:
        if self.measured is None:
            return f"{self.name}: nothing measured (no checkout completed), limit {self.limit}{self.unit}"
        return f"{self.name}: measured {self.measured:.4g}{self.unit} > limit {self.limit:.4g}{self.unit}"


def evaluate(thresholds: Thresholds, measured: Measurement) -> list[Breach]:
    """The thresholds the measurement broke, in the order an SRE reads them; empty when it held."""
    breaches = []
    if measured.checkouts == 0 or measured.checkout_p99_s is None or measured.checkout_p50_s is None:
        breaches.append(Breach("slo-checkout-p99", None, thresholds.checkout_p99_s, " s"))
    else:
        if measured.checkout_p99_s > thresholds.checkout_p99_s:
            breaches.append(Breach("slo-checkout-p99", measured.checkout_p99_s, thresholds.checkout_p99_s, " s"))
        if measured.checkout_p50_s > thresholds.checkout_p50_s:
            breaches.append(Breach("slo-checkout-p50", measured.checkout_p50_s, thresholds.checkout_p50_s, " s"))
    if measured.failure_ratio > thresholds.failure_ratio:
        breaches.append(Breach("slo-failure-ratio", measured.failure_ratio, thresholds.failure_ratio,
                               " (failed RPCs / RPCs)"))
    if measured.wrong_verdicts > thresholds.wrong_verdicts:
        breaches.append(Breach("slo-wrong-verdicts", measured.wrong_verdicts, thresholds.wrong_verdicts))
    return breaches
