"""Group commit on an event loop: the writes of concurrent calls share one round trip.

    batched = GroupCommit(send)          # send(entries) -> one answer per entry, in order
    answer = await batched.submit(entry)

A call that finds no flush in flight starts one (a task of its own, at the loop's next turn, so the
calls of this turn join it, and a call's cancellation never cuts a round trip others wait on); while a
flush is in flight, calls queue, and the next flush sends everything queued, up to `max_batch`
entries, in the order it came. One call alone pays
one round trip, as without the group; sixteen in flight pay about two between them. An error of a
flush is every entry's error in it (a store that fails closed fails each of them closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

Entry = TypeVar("Entry")


class GroupCommit(Generic[Entry]):
    """Entries of concurrent calls, sent by one `send` per flush (on the loop that first submits)."""

    def __init__(
        self, send: Callable[[Sequence[Entry]], Awaitable[Sequence[Any]]], *, max_batch: int = 256,
        failed: Callable[[BaseException], BaseException] | None = None,
    ) -> None:
        """`failed`: the error each waiting call is given for an error of `send` (default: that error)."""
        self._send = send
        self._max_batch = max_batch
        self._failed = failed or (lambda exc: exc)
        self._queue: list[tuple[Entry, asyncio.Future[Any]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.flushes = 0  # how many round trips, for tests and measurement
        self.entries = 0

    async def submit(self, entry: Entry) -> Any:
        """`entry`'s answer, once the flush that carries it is back."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((entry, future))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
                self.flushes += 1
                self.entries += len(batch)
                try:
                    answers = await self._send([entry for entry, _ in batch])
                    if len(answers) != len(batch):
                        raise RuntimeError(f"{len(answers)} answers to {len(batch)} entries")
                except asyncio.CancelledError:  # the loop is closing: nobody queued gets an answer
                    for _, future in batch + self._queue:
                        future.cancel()
                    self._queue = []
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(self._failed(exc))
                    continue
                for (_, future), answer in zip(batch, answers, strict=False):
                    if not future.done():  # a caller cancelled meanwhile: its entry was sent all the same
                        future.set_result(answer)
        finally:
            self._flushing = None

    async def aclose(self) -> None:
        """Waits for a flush in flight (its callers get their answers)."""
        flushing = self._flushing
        if flushing is not None:
            await asyncio.gather(flushing, return_exceptions=True)
