"""Where a call's work runs: on the event loop, or on the pool of threads for blocking work.

The server is grpc's thread-pool server (rpc.threaded): a unary call runs whole on its handler thread,
an async method's coroutine on the one event loop. What the guard runs on the loop (streams, through
rpc.threaded.LoopContext; or every call, on a grpc.aio server) places a plain (not async) method

- on the event loop itself when it is marked `@hot_path` and the deployment keeps every piece of
  hot-path state in this process (`Placement.inline`): a VerifyStream item is then one Python call,
  with no thread hop;
- on the pool otherwise (settlement and admin writes, VerifyBatch's milliseconds of signatures, and
  the `@hot_path` ones of a deployment on Redis or PostgreSQL, which have async methods for their
  hot path instead: see rpc.verifier).

Async methods run on the loop. A client stream handled by a plain method is read on the loop and
handed to the pool thread message by message (`blocking_requests`).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])
_HOT = "_ecard_hot_path"


def hot_path(method: _F) -> _F:
    """Marks a servicer method that touches only in-memory state when the deployment keeps its hot-path
    state in this process: it may then run on the event loop. It must not block otherwise."""
    setattr(method, _HOT, True)
    return method


def is_hot_path(method: Callable[..., Any]) -> bool:
    return bool(getattr(method, _HOT, False))


class Placement:
    """Where blocking work runs: `inline` (on the event loop) or on `pool`."""

    def __init__(self, pool: Executor, *, inline: bool) -> None:
        self.pool = pool
        self.inline = inline

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) on the pool, with this call's context (its principal) carried over."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, contextvars.copy_context().run, fn, *args)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) where the deployment's hot-path reads may run."""
        if self.inline:
            return fn(*args)
        return await self.offload(fn, *args)


def blocking_requests(requests: AsyncIterator[Any], loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """The messages of a client stream, read on the loop, for a plain method running on a pool thread."""
    iterator = requests.__aiter__()

    async def following() -> Any:
        return await iterator.__anext__()

    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(following(), loop).result()
        except StopAsyncIteration:
            return
