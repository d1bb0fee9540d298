"""The benchmarks' load loops (loadtest.bench.run) count every unexpected answer of calls that run
concurrently: a bench that lost them would pass with faults (they once read the running sum before
awaiting the call, so 16 callers overwrote each other's counts)."""

from __future__ import annotations

import asyncio

from loadtest.bench.run import closed_loop, open_loop


async def _odd_one_in_three(i: int) -> int:
    await asyncio.sleep(0.001 * (i % 5))  # calls end out of order, as over a network
    return int(i % 3 == 0)


def test_the_closed_loop_counts_every_unexpected_answer_of_its_callers() -> None:
    phase = asyncio.run(closed_loop(_odd_one_in_three, concurrency=16, seconds=60, limit=900))
    assert phase.calls == 900
    assert phase.unexpected == 300


def test_the_open_loop_counts_every_unexpected_answer() -> None:
    _histogram, _late, unexpected = asyncio.run(open_loop(_odd_one_in_three, rate=3000, seconds=0.3))
    assert unexpected == 300
