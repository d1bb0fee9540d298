"""Admission (core.limits): the token bucket and the in-flight caps, on a fake clock."""

from __future__ import annotations

import pytest

from ecard import ResourceExhausted
from ecard.errors import Unavailable
from ecard_server.config import Settings
from ecard_server.core.limits import Admission
from ecard_server.core.principals import ADMIN, MERCHANT, Principal
from tests.helpers.clock import Clock

A, B = Principal(MERCHANT, "a"), Principal(MERCHANT, "b")



def refusal(admission: Admission, who: Principal) -> str | None:
    try:
        admission.enter(who)
    except ResourceExhausted as exc:
        return exc.reason
    return None


def test_bucket_allows_the_burst_then_the_rate_per_principal() -> None:
    clock = Clock()
    admission = Admission(rate=10, burst=5, clock=clock)
    assert [refusal(admission, A) for _ in range(6)] == [None] * 5 + ["RATE_LIMITED"]
    assert refusal(admission, B) is None  # another principal has its own bucket
    clock.now += 0.1  # one call's worth of refill at 10/s
    assert [refusal(admission, A) for _ in range(2)] == [None, "RATE_LIMITED"]
    clock.now += 60  # refills up to the burst, no further
    assert [refusal(admission, A) for _ in range(6)] == [None] * 5 + ["RATE_LIMITED"]


def test_rate_refusal_says_when_to_come_back() -> None:
    admission = Admission(rate=4, burst=1, clock=Clock())
    admission.enter(A)
    with pytest.raises(ResourceExhausted) as caught:
        admission.enter(A)
    assert caught.value.metadata == {"retry_after_ms": "251"}


def test_in_flight_caps_per_principal_and_in_the_process() -> None:
    admission = Admission(in_flight=2, total_in_flight=3)
    assert [refusal(admission, A) for _ in range(3)] == [None, None, "TOO_MANY_IN_FLIGHT"]
    assert [refusal(admission, B) for _ in range(2)] == [None, "SERVER_BUSY"]
    assert admission.in_flight == 3
    admission.leave(A)
    assert refusal(admission, A) is None and admission.in_flight == 3
    for who in (A, A, B):
        admission.leave(who)
    assert admission.in_flight == 0


def test_refused_calls_take_nothing() -> None:
    clock = Clock()
    admission = Admission(rate=1, burst=1, in_flight=1, clock=clock)
    admission.enter(A)
    assert refusal(admission, A) == "TOO_MANY_IN_FLIGHT"
    admission.leave(A)
    clock.now += 1.0
    assert refusal(admission, A) is None  # the refused call took no token


def test_settings_and_defaults() -> None:
    defaults = Settings()
    assert (defaults.principal_calls_per_s, defaults.principal_burst, defaults.principal_max_in_flight,
            defaults.max_in_flight) == (1000, 2000, 256, 4096)
    admission = Admission.from_settings(defaults.with_overrides({"principal_calls_per_s": 2, "principal_burst": 2}))
    assert [refusal(admission, A) for _ in range(3)] == [None, None, "RATE_LIMITED"]
    with pytest.raises(ValueError, match="non-negative"):
        defaults.with_overrides({"max_in_flight": -1})


def test_the_operator_is_never_limited() -> None:
    admission = Admission(rate=1, burst=1, in_flight=1, total_in_flight=1)
    admin = Principal(ADMIN)
    for _ in range(10):
        admission.enter(admin)
    assert admission.in_flight == 0 and refusal(admission, A) is None


def test_a_call_may_cost_several_at_most_the_bucket() -> None:
    clock = Clock()
    admission = Admission(rate=100, burst=50, clock=clock)
    admission.enter(A, cost=30)
    assert refusal_of_cost(admission, 30) == "RATE_LIMITED"  # 20 left
    clock.now += 1.0  # full again: 50
    admission.enter(A, cost=1000)  # a batch larger than the bucket takes the whole bucket
    assert refusal_of_cost(admission, 1) == "RATE_LIMITED"


def refusal_of_cost(admission: Admission, cost: int) -> str | None:
    try:
        admission.enter(A, cost=cost)
    except ResourceExhausted as exc:
        return exc.reason
    return None


def test_a_batch_is_charged_every_item_even_above_the_burst() -> None:
    """Sends two VerifyBatch-sized costs of 1,000 at 100/s with a bucket of 100. Before: each cost at
    most the bucket (100), so 1,000 items passed every second. Now the second waits for the debt."""
    clock = Clock()
    admission = Admission(rate=100, burst=100, clock=clock)
    admission.enter(A, 1000)  # a full bucket admits it, and owes 900
    admission.leave(A)
    clock.now += 1.0
    with pytest.raises(ResourceExhausted) as refused:
        admission.enter(A, 1000)
    assert 9_000 <= int(refused.value.metadata["retry_after_ms"]) <= 9_100  # 900 owed + 100 to refill - 100 in 1 s
    clock.now += 9.0
    admission.enter(A, 1000)


def test_stream_items_are_charged_and_paced() -> None:
    """Each item of a stream takes a token: past the burst an item waits its turn (asyncio sleeps on
    the real clock here), and one that would wait past max_wait_s refuses the stream."""
    import asyncio
    import time

    async def stream() -> tuple[int, float]:
        admission = Admission(rate=200, burst=10)
        started = time.monotonic()
        for _ in range(60):
            await admission.charge(A)
        return 60, time.monotonic() - started

    items, seconds = asyncio.run(stream())
    assert seconds >= (items - 10) / 200 * 0.9  # 50 items past the burst at 200/s: at least 0.225 s

    async def hopeless() -> str:
        admission = Admission(rate=1, burst=1)
        await admission.charge(A)
        try:
            await admission.charge(A, max_wait_s=0.1)
        except ResourceExhausted as exc:
            return exc.reason or ""
        return "admitted"

    assert asyncio.run(hopeless()) == "RATE_LIMITED"


class FlakyLeases:
    """Shared buckets (core.limits.RateLeases) in a dict, which can be made unreachable."""

    def __init__(self) -> None:
        self.down = False
        self.tokens: dict[str, float] = {}

    def lease(self, key: str, need: float, extra: float, rate: float, burst: float) -> tuple[float, float]:
        if self.down:
            raise Unavailable("rate limit store unavailable: ConnectionError", "LIMITS_UNAVAILABLE")
        left = self.tokens.setdefault(key, burst)
        if left < need:
            return 0.0, (need - left) / rate
        granted = need + min(extra, left - need)
        self.tokens[key] = left - granted
        return granted, 0.0

    async def lease_async(self, key: str, need: float, extra: float, rate: float, burst: float) -> tuple[float, float]:
        return self.lease(key, need, extra, rate, burst)


def entered(admission: Admission, who: Principal, calls: int, *, sync: bool = True) -> list[str | None]:
    """The refusal reason (None: admitted) of `calls` calls, entered as a server thread (enter_sync) or
    on the loop (enter_async) would, each left at once."""
    import asyncio

    reasons: list[str | None] = []
    for _ in range(calls):
        try:
            if sync:
                admission.enter_sync(who)
            else:
                asyncio.run(admission.enter_async(who))
            admission.leave(who)
            reasons.append(None)
        except ResourceExhausted as exc:
            reasons.append(exc.reason)
    return reasons


@pytest.mark.parametrize("sync", [True, False])
def test_an_unreachable_shared_bucket_limits_from_the_process_own_bucket(sync: bool) -> None:
    """The shared store gone (Redis down, or the cluster master holding the bucket not yet replaced):
    calls are still admitted, at the same rate and burst per process, instead of failing
    LIMITS_UNAVAILABLE; once it answers again the shared bucket counts again."""
    clock, leases = Clock(), FlakyLeases()
    admission = Admission(rate=100, burst=4, leases=leases, clock=clock)
    assert entered(admission, A, 5, sync=sync) == [None] * 4 + ["RATE_LIMITED"]  # the shared bucket
    leases.down = True
    clock.now += 1.0  # the local bucket is full: its burst, then the rate
    assert entered(admission, B, 5, sync=sync) == [None] * 4 + ["RATE_LIMITED"]
    clock.now += 0.011  # one call's worth at 100/s (and a little: float stamps)
    assert entered(admission, B, 2, sync=sync) == [None, "RATE_LIMITED"]
    leases.down = False
    assert entered(admission, A, 1, sync=sync) == ["RATE_LIMITED"]  # the shared bucket, still spent
