"""storage.group_commit: concurrent calls share a flush, in order, and a flush's error is each call's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ecard_server.storage.group_commit import GroupCommit


class Log:
    """A `send` that answers each entry doubled, after a round trip of its own, and keeps each flush."""

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.flushes: list[list[int]] = []
        self.fail_with = fail_with

    async def send(self, entries: Sequence[int]) -> list[int]:
        self.flushes.append(list(entries))
        await asyncio.sleep(0.01)
        if self.fail_with is not None:
            raise self.fail_with
        return [entry * 2 for entry in entries]


def test_calls_in_flight_share_flushes_in_the_order_they_came() -> None:
    log = Log()

    async def main() -> list[int]:
        group = GroupCommit(log.send)
        first = asyncio.ensure_future(group.submit(0))
        await asyncio.sleep(0.001)  # its flush is in flight: the next ones queue behind it
        return [await first, *await asyncio.gather(*(group.submit(i) for i in range(1, 20)))]

    assert asyncio.run(main()) == [i * 2 for i in range(20)]
    assert log.flushes == [[0], list(range(1, 20))]


def test_calls_of_one_turn_of_the_loop_share_the_first_flush() -> None:
    log = Log()

    async def main() -> None:
        group = GroupCommit(log.send)
        assert await asyncio.gather(*(group.submit(i) for i in range(5))) == [0, 2, 4, 6, 8]

    asyncio.run(main())
    assert log.flushes == [[0, 1, 2, 3, 4]]


def test_one_call_alone_is_one_flush_and_max_batch_splits() -> None:
    log = Log()

    async def main() -> None:
        group = GroupCommit(log.send, max_batch=4)
        assert await group.submit(7) == 14
        await asyncio.gather(*(group.submit(i) for i in range(10)))
        assert group.flushes == 4 and group.entries == 11

    asyncio.run(main())
    assert log.flushes == [[7], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_flush_that_fails_fails_each_of_its_calls_and_the_next_flush_runs() -> None:
    log = Log(fail_with=ConnectionError("gone"))

    async def main() -> None:
        group = GroupCommit(log.send, failed=lambda exc: RuntimeError(f"closed: {exc}"))
        answers = await asyncio.gather(*(group.submit(i) for i in range(5)), return_exceptions=True)
        assert all(isinstance(a, RuntimeError) and str(a) == "closed: gone" for a in answers)
        assert len({id(a) for a in answers}) == 5  # each call its own error
        log.fail_with = None
        assert await group.submit(3) == 6

    asyncio.run(main())


def test_a_cancelled_caller_leaves_the_others_their_answers() -> None:
    log = Log()

    async def main() -> None:
        group = GroupCommit(log.send)
        calls = [asyncio.ensure_future(group.submit(i)) for i in range(4)]
        await asyncio.sleep(0.001)  # all four in the flush in flight
        calls[0].cancel()
        calls[2].cancel()
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError) and isinstance(done[2], asyncio.CancelledError)
        assert done[1] == 2 and done[3] == 6
        await group.aclose()

    asyncio.run(main())
    assert log.flushes == [[0, 1, 2, 3]]  # cancelled entries were sent all the same


def test_answers_that_do_not_match_the_entries_fail_the_calls() -> None:
    async def short(entries: Sequence[int]) -> list[int]:
        return []

    async def main() -> None:
        with pytest.raises(RuntimeError, match="0 answers to 1 entries"):
            await GroupCommit(short).submit(1)

    asyncio.run(main())
