"""rpc.threaded.HotPool: a few threads while its queue moves; doubled when every thread waits and calls
queue behind them, so that calls holding threads cannot stall the others."""

from __future__ import annotations

import threading
import time

from ecard_server.rpc.threaded import HotPool


def test_calls_queue_on_its_few_threads_while_they_move() -> None:
    # the pool's own look (0.2 s), four times over a queue that moves: ~0.8 s of calls, each ending at
    # once (at 0.05 s, a loaded machine's scheduler alone once kept both threads off a core that long)
    pool = HotPool(2, 64)
    try:
        futures = [pool.submit(time.sleep, 0.002) for _ in range(800)]
        for future in futures:
            future.result(timeout=10)
        assert pool.threads == 2 and len(pool._threads) <= 2  # type: ignore[attr-defined]
    finally:
        pool.shutdown()


def test_threads_that_all_wait_make_the_pool_grow_up_to_its_most() -> None:
    """Four calls waiting (as for a request message that never comes) on a pool of two: the calls queued
    behind them still run, in about a tenth of a second; the pool never passes its most."""
    pool = HotPool(2, 8, stall_s=0.05)
    release = threading.Event()
    try:
        held = [pool.submit(release.wait, 30) for _ in range(4)]
        began = time.monotonic()
        quick = [pool.submit(lambda: 7) for _ in range(3)]
        assert [future.result(timeout=5) for future in quick] == [7, 7, 7]
        assert time.monotonic() - began < 2
        assert pool.threads == 8
        more = [pool.submit(release.wait, 30) for _ in range(20)]
        time.sleep(0.5)
        assert pool.threads == 8 and len(pool._threads) == 8  # type: ignore[attr-defined]
        release.set()
        assert all(future.result(timeout=5) for future in held + more)
    finally:
        release.set()
        pool.shutdown()
