"""Admission: per principal, a token bucket of calls per second and a cap on its calls in flight, and a
cap on the calls in flight in the whole process. One caller flooding is refused at once with
RESOURCE_EXHAUSTED, before any work is done for it, and the others keep their latency.

    admission = Admission.from_settings(settings)
    admission.enter(principal)      # or ResourceExhausted: RATE_LIMITED, TOO_MANY_IN_FLIGHT, SERVER_BUSY
    try:
        ...                         # the call
    finally:
        admission.leave(principal)

A call costs one from the bucket unless it says otherwise (a VerifyBatch costs its items, at most the
bucket's size); it holds one place in flight whatever its cost. The operator (`admin`) is never
limited: it seeds and repairs. A refusal by rate says in its ErrorInfo metadata when to come back
(`retry_after_ms`). Calls that were refused take nothing from the bucket. `enter` and `leave` may run
on any thread. With `serve --workers N` each process counts on its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ecard.errors import ResourceExhausted
from ecard_server.config import Settings
from ecard_server.core.principals import ADMIN, Principal


class _Account:
    __slots__ = ("in_flight", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.in_flight = 0


class Admission:
    def __init__(
        self,
        *,
        rate: float = 0.0,
        burst: float = 0.0,
        in_flight: int = 0,
        total_in_flight: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """rate: calls per second per principal (0: no rate limit), refilling a bucket of `burst` calls
        (at least one); in_flight: per principal, total_in_flight: in the process (0: no cap)."""
        self._rate = float(rate)
        self._burst = max(float(burst), 1.0)
        self._in_flight = in_flight or 1 << 62
        self._total_max = total_in_flight or 1 << 62
        self._total = 0
        self._clock = clock
        self._accounts: dict[Principal, _Account] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        return cls(rate=settings.principal_calls_per_s, burst=settings.principal_burst,
                   in_flight=settings.principal_max_in_flight, total_in_flight=settings.max_in_flight)

    @property
    def in_flight(self) -> int:
        """Calls admitted and not yet left, in the process."""
        return self._total

    def enter(self, principal: Principal, cost: int = 1) -> None:
        """Admits one call of `principal` costing `cost` calls, or raises ResourceExhausted without taking
        anything."""
        if principal.kind == ADMIN:
            return
        with self._lock:
            account = self._accounts.get(principal)
            if account is None:
                account = self._accounts[principal] = _Account(self._burst, self._clock())
            if self._total >= self._total_max:
                raise ResourceExhausted("the server has too many calls in flight", "SERVER_BUSY")
            if account.in_flight >= self._in_flight:
                raise ResourceExhausted("too many calls in flight for this caller", "TOO_MANY_IN_FLIGHT")
            rate = self._rate
            if rate:
                now = self._clock()
                tokens = account.tokens + (now - account.stamp) * rate
                if tokens > self._burst:
                    tokens = self._burst
                account.stamp = now
                need = cost if cost < self._burst else self._burst
                if tokens < need:
                    account.tokens = tokens
                    wait_ms = max(1, int((need - tokens) / rate * 1000) + 1)
                    raise ResourceExhausted("calls per second over this caller's limit", "RATE_LIMITED",
                                            {"retry_after_ms": str(wait_ms)})
                account.tokens = tokens - need
            account.in_flight += 1
            self._total += 1

    def leave(self, principal: Principal) -> None:
        """The end of a call that `enter` admitted."""
        if principal.kind == ADMIN:
            return
        with self._lock:
            self._accounts[principal].in_flight -= 1
            self._total -= 1
