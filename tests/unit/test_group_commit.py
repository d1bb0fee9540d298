"""storage.group_commit: concurrent threads share a flush, led by one of them, in the order they queued;
a flush's error is each of its calls'; the lead is handed on however a flush ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from ecard_server.storage.group_commit import GroupCommit


class Log:
    """A `send` that answers each entry doubled and keeps each flush (and the thread that led it); while
    `gate` is cleared, a flush waits for it (a round trip in flight)."""

    def __init__(self, fail_with: Exception | None = None, failing: int = 10**9) -> None:
        """`fail_with`: the error of the first `failing` flushes."""
        self.flushes: list[list[int]] = []
        self.leaders: list[str] = []
        self.fail_with = fail_with
        self.failing = failing
        self.gate = threading.Event()
        self.gate.set()
        self.in_flight = threading.Event()

    def send(self, entries: Sequence[int]) -> list[int]:
        self.flushes.append(list(entries))
        self.leaders.append(threading.current_thread().name)
        self.in_flight.set()
        assert self.gate.wait(10)
        if self.fail_with is not None and len(self.flushes) <= self.failing:
            raise self.fail_with
        return [entry * 2 for entry in entries]


def _queued(group: GroupCommit[int], count: int) -> None:
    """Waits until `count` calls wait behind the flush in flight."""
    deadline = time.monotonic() + 10
    while len(group._queue) < count:
        assert time.monotonic() < deadline, f"{len(group._queue)} calls queued, not {count}"
        time.sleep(0.001)


def _answer(future: Future[int]) -> int | BaseException:
    try:
        return future.result(10)
    except Exception as exc:
        return exc


def _one_in_flight_then(group: GroupCommit[int], log: Log, threads: ThreadPoolExecutor,
                        entries: list[int]) -> tuple[Future[int], list[Future[int]]]:
    """Entry 0's flush held in flight, then `entries` submitted one by one, each queued before the next."""
    log.gate.clear()
    first = threads.submit(group.submit, 0)
    assert log.in_flight.wait(10)
    queued = []
    for n, entry in enumerate(entries, 1):
        queued.append(threads.submit(group.submit, entry))
        _queued(group, n)
    return first, queued


def test_one_call_alone_is_one_flush_on_its_own_thread() -> None:
    log = Log()
    group = GroupCommit(log.send)
    assert group.submit(7) == 14 and group.submit(8) == 16
    assert log.flushes == [[7], [8]] and group.flushes == 2 and group.entries == 2
    assert log.leaders == [threading.current_thread().name] * 2  # no thread of the group's own


def test_calls_queued_while_a_flush_is_in_flight_share_the_next_one_in_the_order_they_came() -> None:
    log = Log()
    group = GroupCommit(log.send)
    with ThreadPoolExecutor(20) as threads:
        first, queued = _one_in_flight_then(group, log, threads, list(range(1, 20)))
        log.gate.set()
        assert [_answer(first), *map(_answer, queued)] == [i * 2 for i in range(20)]
    assert log.flushes == [[0], list(range(1, 20))]
    assert log.leaders[0] != log.leaders[1]  # the first call queued led the second flush


def test_max_batch_splits_and_each_next_flush_is_led_by_a_call_of_it() -> None:
    log = Log()
    group = GroupCommit(log.send, max_batch=4)
    with ThreadPoolExecutor(12) as threads:
        first, queued = _one_in_flight_then(group, log, threads, list(range(1, 11)))
        log.gate.set()
        assert [_answer(first), *map(_answer, queued)] == [i * 2 for i in range(11)]
    assert log.flushes == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert group.flushes == 4 and group.entries == 11


def test_a_flush_that_fails_fails_each_of_its_calls_and_the_calls_behind_it_are_sent() -> None:
    log = Log(fail_with=ConnectionError("gone"))
    group = GroupCommit(log.send, failed=lambda exc: RuntimeError(f"closed: {exc}"))
    with ThreadPoolExecutor(8) as threads:
        first, queued = _one_in_flight_then(group, log, threads, [1, 2, 3])
        # The three behind it form the next flush, which fails too: every call of both fails closed.
        log.gate.set()
        answers = [_answer(first), *map(_answer, queued)]
    assert all(isinstance(a, RuntimeError) and str(a) == "closed: gone" for a in answers)
    assert len({id(a) for a in answers}) == 4  # each call its own error
    assert log.flushes == [[0], [1, 2, 3]]
    log.flushes.clear()
    log.failing = 1  # the next flush fails; the one behind it (Redis back) does not
    with ThreadPoolExecutor(8) as threads:
        first, queued = _one_in_flight_then(group, log, threads, [4, 5])
        log.gate.set()
        assert isinstance(_answer(first), RuntimeError)
        assert [_answer(q) for q in queued] == [8, 10]  # the failed leader handed on the lead
    assert log.flushes == [[0], [4, 5]]
    assert group.submit(3) == 6


def test_an_error_that_is_not_an_exception_reaches_every_call_and_the_lead_is_handed_on() -> None:
    class Stop(BaseException):
        pass

    log = Log(fail_with=None)
    calls = 0

    def send(entries: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Stop
        return log.send(entries)

    group = GroupCommit(send)
    with pytest.raises(Stop):
        group.submit(1)
    assert group.submit(2) == 4


def test_answers_that_do_not_match_the_entries_fail_the_calls() -> None:
    def short(entries: Sequence[int]) -> list[int]:
        return []

    with pytest.raises(RuntimeError, match="0 answers to 1 entries"):
        GroupCommit(short).submit(1)


def test_many_threads_one_key_twice_each_fresh_exactly_once() -> None:
    """Single use as a store's script gives it, under 32 threads at once: each key submitted twice (by
    two threads) is fresh exactly once, every call answered once, in far fewer flushes than calls, and
    never two flushes in flight."""
    used: set[int] = set()
    in_flight = 0
    overlapped = False
    lock = threading.Lock()

    def consume(keys: Sequence[int]) -> list[bool]:
        nonlocal in_flight, overlapped
        with lock:
            in_flight += 1
            overlapped = overlapped or in_flight > 1
        time.sleep(0.0005)  # a round trip, the GIL released as a socket read releases it
        answers = []
        for key in keys:  # a script runs its consumptions in order
            answers.append(key not in used)
            used.add(key)
        with lock:
            in_flight -= 1
        return answers

    group = GroupCommit(consume)
    keys = [k for k in range(400) for _ in range(2)]
    start = threading.Barrier(32)

    def worker(mine: list[int]) -> list[tuple[int, bool]]:
        start.wait()
        return [(key, group.submit(key)) for key in mine]

    with ThreadPoolExecutor(32) as threads:
        parts = list(threads.map(worker, [keys[n::32] for n in range(32)]))
    answered: dict[int, list[bool]] = {}
    for part in parts:
        for key, fresh in part:
            answered.setdefault(key, []).append(fresh)
    assert sorted(answered) == list(range(400))
    assert all(sorted(both) == [False, True] for both in answered.values())
    assert group.entries == 800 and group.flushes < 800 and not overlapped


def test_a_follower_is_answered_by_a_flush_another_thread_led() -> None:
    """A call queued behind a flush in flight never sends anything itself when a flush ahead carries
    it: the leader of the second flush is the first call queued, the rest only wait."""
    log = Log()
    group = GroupCommit(log.send)
    names: dict[int, str] = {}

    def submit(entry: int) -> int:
        names[entry] = threading.current_thread().name
        return group.submit(entry)

    with ThreadPoolExecutor(4) as threads:
        log.gate.clear()
        first = threads.submit(submit, 0)
        assert log.in_flight.wait(10)
        queued: list[Future[int]] = []
        for n, entry in enumerate((1, 2, 3), 1):
            queued.append(threads.submit(submit, entry))
            _queued(group, n)
        log.gate.set()
        assert [_answer(f) for f in (first, *queued)] == [0, 2, 4, 6]
    assert log.leaders == [names[0], names[1]]
