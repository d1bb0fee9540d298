"""Group commit across threads: the writes of concurrent calls share one round trip.

    batched = GroupCommit(send)          # send(entries) -> one answer per entry, in order (blocking)
    answer = batched.submit(entry)       # on the calling thread

Leader and followers, no thread of its own: a call that finds no flush in flight leads one itself, on
its own thread, sending what is queued (its own entry first, and whatever queued meanwhile); calls that
come while a flush is in flight queue and wait, each on a lock of its own. When the flush is back, its
leader hands the lead to the first call queued (which sends everything queued by then, up to
`max_batch` entries, in the order it came), then answers its batch. One call alone pays one round trip,
as without the group; sixteen in flight pay about two between them. An error of a flush is every entry's
error in it (a store that fails closed fails each of them closed), and the next leader tries again.

A follower waits for at most the flush in flight and its own, each bounded by `send` (a store's socket
timeout): a call is never left waiting on a leader that is gone, since a leader hands on the lead
however its flush ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Entry = TypeVar("Entry")

_WAITING, _ANSWERED, _FAILED, _LEAD = 0, 1, 2, 3


class _Call:
    """One submitted entry: its state and answer, the lock its thread waits on (held until then), and,
    once it is handed the lead, the batch it leads."""

    __slots__ = ("answer", "batch", "entry", "ready", "state")

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        self.state = _WAITING
        self.answer: Any = None
        self.ready = threading.Lock()
        self.ready.acquire()
        self.batch: list[_Call] = []


class GroupCommit(Generic[Entry]):
    """Entries of concurrent threads, sent by one `send` per flush, on the thread of the call leading it."""

    def __init__(
        self, send: Callable[[Sequence[Entry]], Sequence[Any]], *, max_batch: int = 256,
        failed: Callable[[BaseException], BaseException] | None = None,
    ) -> None:
        """`failed`: the error each call of a failed flush is given (default: the flush's error)."""
        self._send = send
        self._max_batch = max_batch
        self._failed = failed or (lambda exc: exc)
        self._lock = threading.Lock()
        self._queue: list[_Call] = []
        self._leading = False  # a flush is in flight, or its lead is being handed on
        self.flushes = 0  # how many round trips, for tests and measurement
        self.entries = 0

    def submit(self, entry: Entry) -> Any:
        """`entry`'s answer, once the flush that carries it is back (raises that flush's error)."""
        call = _Call(entry)
        with self._lock:
            lead = not self._leading  # then nobody waits: the queue is empty
            if lead:
                self._leading = True
                call.batch = [call]
            else:
                self._queue.append(call)
        if not lead:
            call.ready.acquire()  # answered, or handed the lead with a batch
            if call.state != _LEAD:
                if call.state == _FAILED:
                    raise call.answer
                return call.answer
        self._flush(call.batch)
        if call.state == _FAILED:
            raise call.answer
        return call.answer

    def _flush(self, batch: list[_Call]) -> None:
        """One flush of `batch`, led on the thread of its first call, then the lead handed on with the
        next batch (what queued meanwhile), before this batch's calls are woken."""
        self.flushes += 1
        self.entries += len(batch)
        answers: Sequence[Any] = ()
        error: BaseException | None = None
        try:
            answers = self._send([call.entry for call in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers to {len(batch)} entries")
        except BaseException as exc:  # each call of the batch is given it, the leader too
            error = exc
        with self._lock:
            if self._queue:
                following, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
                leader = following[0]
                leader.batch, leader.state = following, _LEAD
                leader.ready.release()
            else:
                self._leading = False
        leader = batch[0]
        if error is None:
            for call, answer in zip(batch, answers, strict=True):
                call.answer, call.state = answer, _ANSWERED
                if call is not leader:
                    call.ready.release()
            return
        for call in batch:
            call.answer, call.state = (self._failed(error) if isinstance(error, Exception) else error), _FAILED
            if call is not leader:
                call.ready.release()
