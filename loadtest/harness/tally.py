"""Counts Locust's own statistics do not keep: verdicts by reason, wrong verdicts, late starts, and
every checkout's exact time (an HdrHistogram of microseconds, 3 significant digits: Locust rounds a
time over 1 s to 100 ms, so a 1-s gate would pass at 1.04 s; this one fails it).

Each process keeps one `Tally`; a worker ships what it counted since its last report to the master
(`report_to_master` / `worker_report`, like Locust's request statistics), so the master's tally is
the whole run's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 3_600_000_000, 3  # 1 µs to an hour


def _histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)


def _counts(histogram: HdrHistogram) -> dict[int, int]:
    return {item.value_iterated_to: item.count_at_value_iterated_to for item in histogram.get_recorded_iterator()}


@dataclass
class Tally:
    starts: Counter[str] = field(default_factory=Counter)
    """Scheduled visit starts, by scenario."""
    late: Counter[str] = field(default_factory=Counter)
    """Starts later than the tolerance after their schedule (the load generator fell behind), by scenario."""
    max_lateness_s: float = 0.0
    verdicts: Counter[str] = field(default_factory=Counter)
    """Every Verify answer, as VERDICT/REASON (e.g. REJECTED/CARD_LOST)."""
    wrong: Counter[str] = field(default_factory=Counter)
    """Wrong verdicts, as `case: expected X, got Y`."""
    checkout_times: HdrHistogram = field(default_factory=_histogram)
    """Every checkout's time, scan to settled, in microseconds."""

    def record_checkout(self, seconds: float) -> None:
        self.checkout_times.record_value(min(max(int(seconds * 1_000_000), _LOWEST_US), _HIGHEST_US))

    def checkout_percentile(self, fraction: float) -> float | None:
        """The checkout time (s) below which `fraction` of the checkouts fall; None without checkouts."""
        if not self.checkout_times.get_total_count():
            return None
        return float(self.checkout_times.get_value_at_percentile(fraction * 100)) / 1_000_000

    @property
    def checkouts(self) -> int:
        return int(self.checkout_times.get_total_count())

    def record_start(self, scenario: str, lateness_s: float, tolerance_s: float) -> None:
        self.starts[scenario] += 1
        if lateness_s > tolerance_s:
            self.late[scenario] += 1
        self.max_lateness_s = max(self.max_lateness_s, lateness_s)

    def record_verdict(self, verdict: str, reason: str) -> None:
        self.verdicts[f"{verdict}/{reason}"] += 1

    def record_wrong(self, description: str) -> None:
        self.wrong[description] += 1

    @property
    def wrong_verdicts(self) -> int:
        return sum(self.wrong.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "starts": dict(self.starts),
            "late": dict(self.late),
            "max_lateness_s": self.max_lateness_s,
            "verdicts": dict(self.verdicts),
            "wrong": dict(self.wrong),
            "checkout_times": self.checkout_times.encode().decode("ascii") if self.checkouts else "",
        }

    def merge(self, data: dict[str, Any]) -> None:
        """Adds a worker's report (as made by `to_dict`)."""
        self.starts.update(data.get("starts", {}))
        self.late.update(data.get("late", {}))
        self.max_lateness_s = max(self.max_lateness_s, float(data.get("max_lateness_s", 0.0)))
        self.verdicts.update(data.get("verdicts", {}))
        self.wrong.update(data.get("wrong", {}))
        if data.get("checkout_times"):
            self.checkout_times.decode_and_add(data["checkout_times"])

    def drain(self) -> dict[str, Any]:
        """What was counted since the last drain; the tally starts again from zero."""
        data = self.to_dict()
        self.reset()
        return data

    def reset(self) -> None:
        self.starts.clear()
        self.late.clear()
        self.verdicts.clear()
        self.wrong.clear()
        self.max_lateness_s = 0.0
        self.checkout_times.reset()

    def snapshot(self) -> Tally:
        copy = Tally()
        copy.merge(self.to_dict())
        return copy

    def since(self, earlier: Tally) -> Tally:
        """The counts added after `earlier` was snapshot (max lateness stays the running maximum)."""
        delta = Tally(max_lateness_s=self.max_lateness_s)
        for name in ("starts", "late", "verdicts", "wrong"):
            counts = getattr(self, name) - getattr(earlier, name)  # Counter subtraction drops non-positive
            getattr(delta, name).update(counts)
        before = _counts(earlier.checkout_times)
        for value, count in _counts(self.checkout_times).items():
            if count > before.get(value, 0):
                delta.checkout_times.record_value(value, count - before.get(value, 0))
        return delta
