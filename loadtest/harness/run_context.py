"""What one Locust process knows about the run beyond Locust's statistics: settings, seed, tally."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import gevent.event
from locust.env import Environment

from loadtest.harness.seeding import Seed
from loadtest.harness.settings import HarnessSettings
from loadtest.harness.tally import Tally

SEED_WAIT_S = 120.0

_contexts: weakref.WeakKeyDictionary[Environment, RunContext] = weakref.WeakKeyDictionary()


@dataclass
class RunContext:
    settings: HarnessSettings
    tally: Tally = field(default_factory=Tally)
    seed: Seed | None = None
    seed_ready: gevent.event.Event = field(default_factory=gevent.event.Event)
    started_at: float | None = None
    """Wall-clock seconds when the test started (test_start), for achieved rates."""
    stopped_at: float | None = None
    workers: set[str] = field(default_factory=set)
    """Ids of the workers that reported (distributed runs)."""
    capacity: dict[str, Any] | None = None
    """The step shape's findings, when the run was a capacity search."""

    def share_seed(self, seed: Seed) -> None:
        self.seed = seed
        self.seed_ready.set()

    def wait_for_seed(self) -> Seed:
        """The seed; on a worker it arrives from the master just before the first users start."""
        if not self.seed_ready.wait(SEED_WAIT_S) or self.seed is None:
            raise RuntimeError(f"no seed after {SEED_WAIT_S:.0f} s: the master did not send one")
        return self.seed


def context_of(environment: Environment) -> RunContext:
    context = _contexts.get(environment)
    if context is None:
        context = _contexts[environment] = RunContext(HarnessSettings.of(environment))
    return context
