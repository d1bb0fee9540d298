"""The server's transport: grpc's thread-pool server, with one event loop in a thread of its own.

grpc's sync server carries a unary call for ~55 us less CPU than grpc.aio on this hardware
(docs/performance.md, issue 18), so calls arrive on handler threads. Where each one runs:

- a method with a unary request and a unary response (Verify and every plain read or write): on its
  handler thread, with the guard's threaded runner (rpc.guard): authorized, its request read bounded,
  admitted, run; an async method (health's Check) has its coroutine run on the loop while the handler
  thread waits for it;
- a request stream answered by a plain generator (VerifyStream): on its
  handler thread, like a unary call (the guard's threaded stream runner);
- any other streaming method (WatchEvents, EnrollCards, health's Watch,
  reflection): the guard's grpc.aio runner, unchanged, run on the loop through `LoopContext`, which
  gives it the grpc.aio context it expects over the handler thread's call: each request message read
  on a reader thread, each response handed to the handler thread to send.

`ThreadedServer` takes the place of the grpc.aio server in GuardedRegistry: it registers each guarded
handler on the sync server, bridged to the loop when its behavior is async. Every call runs in a
fresh contextvars.Context (its principal and request id are its own, not the previous call's on the
same thread).

A call of a method the guard marks hot (`rpc.placement.hot_path`: the embedded deployment's Verify and
GetVerification, which only compute from memory) runs on a pool of its own, `HotPool`, of HOT_THREADS
threads rather than on one of the server's many: calls beyond that wait in the pool's queue, and a
thread that ends a call takes the next one without sleeping, instead of each call waking a thread of
its own that then contends for the GIL (docs/performance.md, issue 18: fewer context switches and less
CPU per call). A thread of that pool can still wait, for its call's request message (read after
authorization, rpc.parsing); when the pool's queue stops moving (an authorized caller's streams that
never send their message hold every thread) it grows, doubling, up to the server's CALL_THREADS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import itertools
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import grpc
import grpc.aio

from ecard_server.rpc.placement import is_hot_path

_END = object()
_AHEAD = 8  # responses of a stream produced on the loop ahead of the handler thread's sending


class _Aborted(Exception):  # grpc.aio's AbortError plays the same part
    """What LoopContext.abort raises on the loop; the handler thread ends its call with that status."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: Sequence[tuple[str, Any]]) -> None:
        super().__init__(details)
        self.code, self.details, self.trailing = code, details, trailing


def _next_or_eof(requests: Iterator[Any]) -> Any:
    try:
        return next(requests)
    except StopIteration:
        return grpc.aio.EOF


def _end(context: grpc.ServicerContext, aborted: _Aborted) -> None:
    context.set_trailing_metadata(tuple(aborted.trailing))
    context.abort(aborted.code, aborted.details)


class LoopContext:
    """The grpc.aio ServicerContext that a guarded aio runner uses, for a call of the sync server,
    on the loop (the methods the guard and ecard's servicers call)."""

    def __init__(
        self, context: grpc.ServicerContext, requests: Iterator[Any], loop: asyncio.AbstractEventLoop,
        readers: Executor,
    ) -> None:
        self._context = context
        self._requests = requests
        self._loop = loop
        self._readers = readers
        self._out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._room = asyncio.Semaphore(_AHEAD)

    # -- reading and writing, bridged to the handler thread's call --------------------------------
    async def read(self) -> Any:
        return await self._loop.run_in_executor(self._readers, _next_or_eof, self._requests)

    async def messages(self, parse: Callable[[bytes], Any]) -> AsyncIterator[Any]:
        """A request stream's messages, each parsed by `parse` (a bad one raises where it is read)."""
        while True:
            data = await self.read()
            if data is grpc.aio.EOF:
                return
            yield parse(data)

    async def write(self, message: Any) -> None:
        await self._room.acquire()
        self._out.put(message)

    def _taken(self) -> None:
        self._room.release()

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        raise _Aborted(code, details, tuple(trailing_metadata or ()))

    async def send_initial_metadata(self, metadata: Any) -> None:
        self._context.send_initial_metadata(metadata)

    # -- the call's facts, from the sync context ----------------------------------------------------
    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def auth_context(self) -> Mapping[str, Any]:
        return self._context.auth_context()

    def peer(self) -> str:
        return self._context.peer()

    def peer_identities(self) -> Any:
        return self._context.peer_identities()

    def peer_identity_key(self) -> Any:
        return self._context.peer_identity_key()

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._context.set_trailing_metadata(metadata)

    def trailing_metadata(self) -> Any:
        return self._context.trailing_metadata()  # type: ignore[attr-defined]

    def set_code(self, code: grpc.StatusCode) -> None:
        self._context.set_code(code)

    def set_details(self, details: str) -> None:
        self._context.set_details(details)

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def cancelled(self) -> bool:
        return not self._context.is_active()

    def done(self) -> bool:
        return not self._context.is_active()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        loop = self._loop
        def ended() -> None:
            loop.call_soon_threadsafe(callback, self)

        self._context.add_callback(ended)


HOT_THREADS = 4
"""Threads of the hot pool while its queue moves: with the GIL, one process computes on about one core,
so a few threads keep it busy; 4 and 8 carried the same Verify rate, 4 with the fewest context switches
(docs/performance.md, issue 18)."""
STALL_S = 0.2
"""How often the hot pool looks at its queue: a queue that held calls and started none for that long
has every thread waiting (for request messages), and the pool doubles."""


class HotPool(concurrent.futures.ThreadPoolExecutor):
    """The pool of hot methods' calls: `threads` threads, doubled (up to `most`) whenever calls waited in
    its queue for STALL_S and none started, so callers that hold threads with requests they never send
    cannot stall the others beyond about a second (that takes `most` such calls, as on the server's own
    pool). Grows through ThreadPoolExecutor's `_max_workers` and `_adjust_thread_count` (CPython's own
    growth, as `submit` uses it); its threads, like the server's, stay until the pool is shut down."""

    def __init__(self, threads: int, most: int, *, stall_s: float = STALL_S) -> None:
        super().__init__(max_workers=threads, thread_name_prefix="ecard-hot")
        self.most = most
        self._starts = itertools.count(1).__next__
        self._started = 0  # the number of the last call started (only compared, never summed)
        self._ended = threading.Event()
        threading.Thread(target=self._watch, args=(stall_s,), name="ecard-hot-watch", daemon=True).start()

    @property
    def threads(self) -> int:
        """How many threads the pool may run now."""
        return self._max_workers  # type: ignore[attr-defined,no-any-return]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        return super().submit(self._started_now, fn, args, kwargs)

    def _started_now(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self._started = self._starts()
        return fn(*args, **kwargs)

    def _watch(self, stall_s: float) -> None:
        seen = self._started
        while not self._ended.wait(stall_s):
            started, queued = self._started, self._work_queue.qsize()  # type: ignore[attr-defined]
            if queued and started == seen and self._max_workers < self.most:  # type: ignore[attr-defined]
                with self._shutdown_lock:  # type: ignore[attr-defined]
                    self._max_workers = min(self.most, self._max_workers * 2)  # type: ignore[attr-defined]
                    for _ in range(queued):  # as `submit` does for each queued call: a thread for it
                        self._adjust_thread_count()  # type: ignore[attr-defined]
            seen = started

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._ended.set()
        super().shutdown(wait, cancel_futures=cancel_futures)


class ThreadedServer:
    """A grpc.server (thread pool) that GuardedRegistry registers on as it would on a grpc.aio server;
    hot methods' calls run on `hot` (HotPool)."""

    def __init__(
        self, server: grpc.Server, loop: asyncio.AbstractEventLoop, readers: Executor, hot: HotPool | None = None
    ) -> None:
        self.server = server
        self._loop = loop
        self._readers = readers
        self.hot = hot

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        threaded = {name: self.threaded(handler) for name, handler in handlers.items()}
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, threaded),))
        self.server.add_registered_method_handlers(service, threaded)

    def threaded(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler` as the sync server runs it: on its handler thread, or bridged to the loop."""
        behavior: Callable[..., Any] = (handler.unary_unary or handler.unary_stream  # type: ignore[assignment]
                                        or handler.stream_unary or handler.stream_stream)
        parse = handler.request_deserializer  # request messages come as bytes: parsed where they are read
        loop, readers = self._loop, self._readers
        on_the_loop = inspect.isasyncgenfunction(behavior) or inspect.iscoroutinefunction(behavior)
        if handler.response_streaming and on_the_loop:  # an async generator, or a coroutine writing with
            # context.write

            def streamed(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
                on_loop = LoopContext(context, requests, loop, readers)
                arg = _argument(handler, on_loop, requests, parse)
                return _stream_from_loop(_writing(behavior(arg, on_loop), on_loop), on_loop, context, loop)

            run: Callable[..., Any] = streamed
        elif inspect.iscoroutinefunction(behavior):

            def awaited(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                on_loop = LoopContext(context, requests, loop, readers)
                arg = _argument(handler, on_loop, requests, parse)
                return _await_on_loop(behavior(arg, on_loop), context, loop)

            run = awaited
        else:
            run = behavior  # a threaded runner of the guard: sync, on the handler thread

        def fresh(requests: Any, context: grpc.ServicerContext) -> Any:
            return contextvars.Context().run(run, requests, context)

        if run is behavior and is_hot_path(behavior) and self.hot is not None:
            fresh.experimental_thread_pool = self.hot  # type: ignore[attr-defined]  # grpc's pool per handler

        if handler.request_streaming:
            make = grpc.stream_stream_rpc_method_handler if handler.response_streaming \
                else grpc.stream_unary_rpc_method_handler
        else:
            make = grpc.unary_stream_rpc_method_handler if handler.response_streaming \
                else grpc.unary_unary_rpc_method_handler
        unparsed = handler.request_streaming or run is behavior
        return make(fresh, None if unparsed else parse, handler.response_serializer)  # type: ignore[operator]


def _argument(handler: grpc.RpcMethodHandler, on_loop: LoopContext, requests: Any, parse: Any) -> Any:
    """What the aio runner takes as its request: a unary request as is, a request stream read on the loop."""
    if not handler.request_streaming:
        return requests
    if parse is None:  # lazily read (rpc.parsing): the runner reads its one message itself
        return None
    return on_loop.messages(parse)


def _canceller(future: concurrent.futures.Future[Any]) -> Callable[[], None]:
    """What cancels `future` when its call ends (a no-op once it is done)."""

    def cancel() -> None:
        future.cancel()

    return cancel


def _await_on_loop(coroutine: Any, context: grpc.ServicerContext, loop: asyncio.AbstractEventLoop) -> Any:
    """The coroutine's result, run on the loop (cancelled there when the call ends first)."""
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    context.add_callback(_canceller(future))
    try:
        return future.result()
    except _Aborted as aborted:
        _end(context, aborted)
    except concurrent.futures.CancelledError:
        context.abort(grpc.StatusCode.CANCELLED, "the call ended")


async def _writing(responses: Any, on_loop: LoopContext) -> None:
    """A streaming method's run: each item of an async generator written, or a coroutine awaited (it
    writes its messages itself)."""
    if inspect.isasyncgen(responses):
        async for response in responses:
            await on_loop.write(response)
    else:
        await responses


def _stream_from_loop(
    run: Awaitable[None], on_loop: LoopContext, context: grpc.ServicerContext, loop: asyncio.AbstractEventLoop,
) -> Iterator[Any]:
    async def drive() -> None:
        try:
            await run
        except BaseException as exc:
            on_loop._out.put((_END, exc))
            raise
        on_loop._out.put((_END, None))

    future = asyncio.run_coroutine_threadsafe(drive(), loop)
    context.add_callback(_canceller(future))
    out, taken = on_loop._out, on_loop._taken
    while True:
        item = out.get()
        if type(item) is tuple and item and item[0] is _END:
            error = item[1]
            if isinstance(error, _Aborted):
                _end(context, error)
            if isinstance(error, asyncio.CancelledError):
                return
            if error is not None:
                raise error
            return
        loop.call_soon_threadsafe(taken)
        yield item
