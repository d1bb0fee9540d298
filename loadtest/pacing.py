"""ScheduledUser: visits arrive on a schedule (an open model), and are timed from when they should start.

A closed model (each user waits for its answer, then thinks, then asks again) hides a slow server:
the slower it answers, the less load it gets, and the queueing never shows in the timings
("coordinated omission"). Here each simulated user is a counter where holders arrive at a given
mean interval (Poisson or evenly spaced) whatever the server does: each arrival starts its visit in
its own greenlet at its scheduled time, several visits may be open at once, and every measurement
of a visit runs from its *scheduled* start. When the load generator cannot start a visit on time
(too many open at one counter, or its CPU is saturated) the start is counted as late, and the delay
still counts in the visit's time.

The tasks a locustfile declares on a ScheduledUser are the kinds of visit, picked by their weights;
each takes the `Visit` as its argument:

    class PharmacyCheckout(MerchantCounter):
        @task
        def checkout(self, visit: Visit) -> None:
            with visit.measure("checkout", "scan to settled"):
                ...
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import gevent
from gevent.pool import Pool
from locust.env import Environment

from ecard import ClientOptions, EcardError
from loadtest.grpc_user import GrpcUser, LocustInterceptor
from loadtest.harness.run_context import RunContext, context_of
from loadtest.harness.slo import WrongAnswer

log = logging.getLogger("loadtest")
VISIT_DRAIN_S = 5.0
"""On stop, how long open visits may take to finish (and be counted) before they are cut off."""


class Visit:
    """One scheduled visit: its intended start (time.monotonic) and a way to time steps from it."""

    def __init__(self, environment: Environment, intended_start: float) -> None:
        self.environment = environment
        self.intended_start = intended_start

    @contextmanager
    def measure(self, request_type: str, name: str) -> Iterator[None]:
        """Fires one Locust request from the scheduled start to the end of the block; failed if it raised."""
        error: BaseException | None = None
        try:
            yield
        except Exception as exc:
            error = exc
            raise
        finally:
            self.environment.events.request.fire(
                request_type=request_type,
                name=name,
                response_time=(time.monotonic() - self.intended_start) * 1000,
                response_length=0,
                response=None,
                context={},
                exception=error,
            )


class ScheduledUser(GrpcUser):
    """Abstract: a counter where visits (the declared tasks) arrive at `--visit-interval` on average."""

    abstract = True
    scenario: ClassVar[str] = ""
    """The name late starts are counted under."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        # Locust would run the declared tasks back to back; here it runs the schedule, and each arrival
        # starts one of the declared tasks (weights kept: Locust expands them into this list).
        self._visit_kinds: list[Callable[..., Any]] = list(self.tasks)  # type: ignore[arg-type]
        self.tasks = [ScheduledUser._arrive]
        self.harness: RunContext = context_of(environment)
        self.settings = self.harness.settings
        self._visits = Pool(self.settings.max_in_flight)
        self._next_start = 0.0

    def on_start(self) -> None:
        self.seed = self.harness.wait_for_seed()
        self.prepare()
        super().on_start()
        gevent.sleep(random.uniform(0, self.settings.visit_interval))  # counters do not all open at once
        self._next_start = time.monotonic()

    def prepare(self) -> None:
        """Hook: pick this counter's merchant and keys from `self.seed` before its client connects."""

    def on_stop(self) -> None:
        self._visits.join(timeout=VISIT_DRAIN_S)
        self._visits.kill(block=True, timeout=1)
        super().on_stop()

    def client_options(self, principal: str) -> ClientOptions:
        return self.settings.client_options(principal, interceptors=(LocustInterceptor(self.environment),))

    def wait_time(self) -> float:
        return max(0.0, self._next_start - time.monotonic())

    def _arrive(self) -> None:
        intended = self._next_start
        interval = self.settings.visit_interval
        self._next_start += random.expovariate(1 / interval) if self.settings.arrivals == "poisson" else interval
        self._visits.spawn(self._visit, random.choice(self._visit_kinds), intended)  # waits when the pool is full

    def _visit(self, kind: Callable[..., Any], intended: float) -> None:
        self.harness.tally.record_start(
            self.scenario or type(self).__name__, time.monotonic() - intended, self.settings.late_tolerance
        )
        try:
            kind(self, Visit(self.environment, intended))
        except (EcardError, WrongAnswer):
            pass  # already a failed request in the statistics (the interceptor's, or the scenario's check)
        except Exception as exc:
            log.exception("visit %s of %s failed", getattr(kind, "__name__", kind), type(self).__name__)
            self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=exc.__traceback__)
        finally:
            self.visit_ended()

    def visit_ended(self) -> None:
        """Hook: a visit ended (in its own greenlet, whatever its outcome)."""
