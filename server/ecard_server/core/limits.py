"""Admission: per principal, a token bucket of calls per second and a cap on its calls in flight, and a
cap on the calls in flight in the whole process. One caller flooding is refused at once with
RESOURCE_EXHAUSTED, before any work is done for it, and the others keep their latency.

    admission = Admission.from_settings(settings, leases)
    admission.enter(principal, cost)   # or ResourceExhausted: RATE_LIMITED, TOO_MANY_IN_FLIGHT, SERVER_BUSY
    try:                               # (or NeedLease: ask `await admission.refill(...)`, then enter again)
        ...                            # the call; each item of a stream: `await admission.charge(principal)`
    finally:
        admission.leave(principal)

Every unit of work is charged: a call costs one, a VerifyBatch its items, each VerifyStream item one.
A cost above the bucket's size is admitted when the bucket is full and leaves it in debt, so a batch of
1,000 items costs 1,000 however small the burst. The operator (`admin`) is never limited: it seeds and
repairs. A refusal by rate says in its ErrorInfo metadata when to come back (`retry_after_ms`). Calls
that were refused take nothing from the bucket. `enter`, `leave` and `charge` may run on any thread.

The bucket is the deployment's, not the process's, when the deployment shares Redis (`leases`, a
RateLeases): each process takes tokens from one bucket per principal in Redis in small leases (a
fiftieth of a second's rate, at least one call) and admits from its lease without a round trip; a call
that finds its lease short waits for one more lease first. Tokens leased and not yet used are the only
slack: at most one lease per process, so `--workers N` and replicas together hold the limit within a
few per cent. Calls in flight are counted per process (they are this process's resources).

When the shared store does not answer (Redis down, or the Redis Cluster master holding a principal's
bucket gone until its replica is promoted), the limits do not fail the call: the process admits from
a bucket of its own for that principal (same rate and burst), so the deployment's limit is at most the
number of processes times the rate while it lasts, and single use, which does need the store, still
fails closed on its own. The shared buckets are asked again at the next lease.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ecard.errors import ResourceExhausted, Unavailable
from ecard_server.config import Settings
from ecard_server.core.principals import ADMIN, Principal

LEASE_SECONDS = 0.02  # a lease holds this many seconds of a principal's rate (at least one call)
MAX_STREAM_WAIT_S = 1.0  # a stream item waits this long at most for its turn, then the stream is refused


class RateLeases(Protocol):
    """Token buckets shared by every process of a deployment (storage.redis_limits.RedisRateLeases).

    `lease(key, need, extra, rate, burst)`: takes `need` tokens (and up to `extra` more, if there) from
    the bucket `key`, refilled at `rate` per second up to `burst`; a need above the burst is granted when
    the bucket is full, into debt. Returns (tokens granted, 0.0), or (0.0, seconds until `need` would be
    granted). Raises ecard.errors.Unavailable when the shared store does not answer."""

    def lease(self, key: str, need: float, extra: float, rate: float, burst: float) -> tuple[float, float]: ...

    async def lease_async(
        self, key: str, need: float, extra: float, rate: float, burst: float
    ) -> tuple[float, float]: ...


class NeedLease(Exception):
    """The local lease is short: `Admission.refill` (or `refill_sync`) first, then enter again."""

    def __init__(self, principal: Principal, need: float) -> None:
        self.principal = principal
        self.need = need


class _Account:
    __slots__ = ("in_flight", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens  # the local bucket, or the unused lease from the shared one
        self.stamp = stamp
        self.in_flight = 0


def _rate_limited(wait_s: float) -> ResourceExhausted:
    wait_ms = max(1, int(wait_s * 1000) + 1)
    return ResourceExhausted("calls per second over this caller's limit", "RATE_LIMITED",
                             {"retry_after_ms": str(wait_ms)})


class Admission:
    def __init__(
        self,
        *,
        rate: float = 0.0,
        burst: float = 0.0,
        in_flight: int = 0,
        total_in_flight: int = 0,
        leases: RateLeases | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """rate: calls per second per principal (0: no rate limit), refilling a bucket of `burst` calls
        (at least one); in_flight: per principal, total_in_flight: in the process (0: no cap); leases:
        the deployment's shared buckets (None: this process's own)."""
        self._rate = float(rate)
        self._burst = max(float(burst), 1.0)
        self._in_flight = in_flight or 1 << 62
        self._total_max = total_in_flight or 1 << 62
        self._total = 0
        self._leases = leases if rate else None
        self._chunk = max(1.0, self._rate * LEASE_SECONDS)
        self._clock = clock
        self._accounts: dict[Principal, _Account] = {}
        self._local: dict[Principal, _Account] = {}  # the buckets used while the shared ones are unreachable
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, leases: RateLeases | None = None) -> Admission:
        return cls(rate=settings.principal_calls_per_s, burst=settings.principal_burst,
                   in_flight=settings.principal_max_in_flight, total_in_flight=settings.max_in_flight,
                   leases=leases)

    @property
    def in_flight(self) -> int:
        """Calls admitted and not yet left, in the process."""
        return self._total

    @property
    def shared(self) -> bool:
        """Whether the rate is counted in the deployment's shared buckets."""
        return self._leases is not None

    def _account(self, principal: Principal) -> _Account:
        account = self._accounts.get(principal)
        if account is None:
            start = 0.0 if self._leases is not None else self._burst  # a lease starts empty
            account = self._accounts[principal] = _Account(start, self._clock())
        return account

    def _take(self, principal: Principal, account: _Account, cost: float) -> None:
        """Takes `cost` from the account's tokens (under the lock), or raises without taking anything."""
        if self._leases is not None:
            if account.tokens < cost:
                raise NeedLease(principal, cost - account.tokens)
            account.tokens -= cost
            return
        self._take_from_bucket(account, cost)

    def _take_from_bucket(self, account: _Account, cost: float) -> None:
        """Takes `cost` from a bucket refilled at the rate (under the lock), or RATE_LIMITED taking nothing."""
        rate, burst = self._rate, self._burst
        now = self._clock()
        tokens = account.tokens + (now - account.stamp) * rate
        if tokens > burst:
            tokens = burst
        account.stamp = now
        need = cost if cost < burst else burst  # a cost above the burst needs a full bucket, then owes
        if tokens < need:
            account.tokens = tokens
            raise _rate_limited((need - tokens) / rate)
        account.tokens = tokens - cost

    def enter(self, principal: Principal, cost: int = 1) -> None:
        """Admits one call of `principal` costing `cost`, or raises ResourceExhausted (or NeedLease)
        without taking anything."""
        if principal.kind == ADMIN:
            return
        with self._lock:
            account = self._account(principal)
            if self._total >= self._total_max:
                raise ResourceExhausted("the server has too many calls in flight", "SERVER_BUSY")
            if account.in_flight >= self._in_flight:
                raise ResourceExhausted("too many calls in flight for this caller", "TOO_MANY_IN_FLIGHT")
            if self._rate and cost:
                self._take(principal, account, cost)
            account.in_flight += 1
            self._total += 1

    def leave(self, principal: Principal) -> None:
        """The end of a call that `enter` admitted."""
        if principal.kind == ADMIN:
            return
        with self._lock:
            self._accounts[principal].in_flight -= 1
            self._total -= 1

    def _credit(self, principal: Principal, granted: float) -> None:
        with self._lock:
            self._account(principal).tokens += granted

    def _lend_locally(self, short: NeedLease) -> None:
        """What `short` lacks from this process's own bucket of its principal (the shared store does not
        answer), or RATE_LIMITED taking nothing."""
        with self._lock:
            local = self._local.get(short.principal)
            if local is None:
                local = self._local[short.principal] = _Account(self._burst, self._clock())
            self._take_from_bucket(local, short.need)
            self._account(short.principal).tokens += short.need

    async def refill(self, short: NeedLease) -> None:
        """One lease from the shared bucket for what `short` lacks, or RATE_LIMITED (taking nothing);
        from this process's own bucket while the shared one does not answer."""
        assert self._leases is not None
        try:
            granted, wait = await self._leases.lease_async(
                f"{short.principal}", short.need, self._chunk, self._rate, self._burst)
        except Unavailable:
            return self._lend_locally(short)
        if not granted:
            raise _rate_limited(wait)
        self._credit(short.principal, granted)

    def refill_sync(self, short: NeedLease) -> None:
        """`refill` on a thread (a blocking round trip)."""
        assert self._leases is not None
        try:
            granted, wait = self._leases.lease(f"{short.principal}", short.need, self._chunk, self._rate, self._burst)
        except Unavailable:
            return self._lend_locally(short)
        if not granted:
            raise _rate_limited(wait)
        self._credit(short.principal, granted)

    async def enter_async(self, principal: Principal, cost: int = 1) -> None:
        """`enter`, waiting for a lease of the shared bucket when the local one is short."""
        for _ in range(3):  # a lease just taken may be spent by other calls before this one: ask again
            try:
                return self.enter(principal, cost)
            except NeedLease as short:
                await self.refill(short)
        raise _rate_limited(1 / self._rate)

    def enter_sync(self, principal: Principal, cost: int = 1) -> None:
        """`enter` on a thread, with a blocking lease round trip when the local one is short."""
        for _ in range(3):
            try:
                return self.enter(principal, cost)
            except NeedLease as short:
                self.refill_sync(short)
        raise _rate_limited(1 / self._rate)

    def _charge_now(self, principal: Principal, cost: float) -> float:
        """Takes `cost` for an item of an admitted call: 0.0, or the seconds to wait (taking nothing)."""
        with self._lock:
            try:
                self._take(principal, self._account(principal), cost)
            except ResourceExhausted as refused:
                return int(refused.metadata["retry_after_ms"]) / 1000
        return 0.0

    def charged_at_once(self, principal: Principal, cost: int = 1) -> bool:
        """Takes `cost` for an item of an admitted call when that needs neither a wait nor a lease of the
        shared bucket (True); otherwise takes nothing (False: `charge` it)."""
        if principal.kind == ADMIN or not self._rate:
            return True
        try:
            return not self._charge_now(principal, cost)
        except NeedLease:
            return False

    async def charge(self, principal: Principal, cost: int = 1, *, max_wait_s: float = MAX_STREAM_WAIT_S) -> None:
        """Charges one item of a stream (its call was admitted): waits for its turn when the rate is
        spent (a stream is paced to the limit), or raises RATE_LIMITED when that would take longer than
        `max_wait_s`."""
        if principal.kind == ADMIN or not self._rate:
            return
        waited = 0.0
        while True:
            try:
                wait = self._charge_now(principal, cost)
            except NeedLease as short:
                try:
                    await self.refill(short)
                    continue
                except ResourceExhausted as refused:
                    wait = int(refused.metadata["retry_after_ms"]) / 1000
            if not wait:
                return
            if waited + wait > max_wait_s:
                raise _rate_limited(wait)
            await asyncio.sleep(wait)
            waited += wait
