"""Counts Locust's own statistics do not keep: verdicts by reason, wrong verdicts, late starts.

Each process keeps one `Tally`; a worker ships what it counted since its last report to the master
(`report_to_master` / `worker_report`, like Locust's request statistics), so the master's tally is
the whole run's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


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
        }

    def merge(self, data: dict[str, Any]) -> None:
        """Adds a worker's report (as made by `to_dict`)."""
        self.starts.update(data.get("starts", {}))
        self.late.update(data.get("late", {}))
        self.max_lateness_s = max(self.max_lateness_s, float(data.get("max_lateness_s", 0.0)))
        self.verdicts.update(data.get("verdicts", {}))
        self.wrong.update(data.get("wrong", {}))

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
        return delta
