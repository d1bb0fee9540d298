"""The guard: what every call shares, composed around each method handler once, at registration.

Each concern has its own module; this one only composes them, in `GuardedRegistry.layers` (the one
place to add a layer), and runs the result in the shape the method has:

    tracing         tracing         the call's server span, when tracing is on (else no layer at all)
    authorization   rpc.auth        principal and role table (MethodAuthorization)
    parsing         rpc.parsing     the request read, bounded per method, only once the caller may call;
                                    too large or not parsing: INVALID_ARGUMENT
    admission       rpc.admission   the limits: rate per principal, calls in flight (core.limits)
    metrics         rpc.metrics     requests and latency by method and code
    request log     rpc.request_log one line per call, its request id sent back as x-request-id
    error mapping   rpc.status      EcardError -> gRPC status with ErrorInfo
    crash logging   rpc.crashes     anything else: `rpc_crashed` logged, INTERNAL answered
    placement       rpc.placement   on the event loop or on the pool

    registry = GuardedRegistry(server, authorizer, placement, admission)
    verifier_pb2_grpc.add_VerifierServicer_to_server(servicer, registry)  # instead of the server

On ecard's server (grpc's thread-pool server, rpc.threaded) a method with a unary request and answer
gets the threaded runner: every layer above, and the method, on the call's handler thread (an async
method's coroutine on the event loop, the thread waiting for it); the bounded read is the same,
after authorization (rpc.parsing.read_bounded). Streams, and every call of a grpc.aio server, get the
runners below, on the loop.

On the loop, every call is admitted (authorization from memory, a stale directory read through
the placement) before its method runs, so its principal is set in the call's own context and the
pool thread that runs a plain method inherits it. A unary request is read by the guard itself, after
authorization (rpc.parsing.bounded_reader): an unauthenticated caller's bytes are never parsed. The
inline hot path (a `@hot_path` method of a deployment that keeps its state in this process) awaits only
the read of its request, then is admitted and run in one Python call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeAlias, cast

import grpc
import grpc.aio

from ecard.errors import EcardError
from ecard_server import tracing
from ecard_server.core.limits import Admission
from ecard_server.rpc import crashes, metrics
from ecard_server.rpc.admission import (
    admitted_by_nothing,
    admitted_by_nothing_async,
    limited,
    metered,
    metered_sync,
)
from ecard_server.rpc.auth import Authorizer, MethodAuthorization
from ecard_server.rpc.parsing import (
    BATCH_METHOD,
    MessageLimits,
    Reader,
    bounded_parser,
    bounded_reader,
    handler_like,
    lazily_read,
    read_bounded,
    tolerant,
)
from ecard_server.rpc.placement import Placement, blocking_requests, hot_path, is_hot_path
from ecard_server.rpc.request_log import RequestLog
from ecard_server.rpc.status import abort, abort_threaded

__all__ = ["GuardedRegistry", "Layers", "Placement", "hot_path"]
_perf = time.perf_counter
Context: TypeAlias = grpc.aio.ServicerContext
Items: TypeAlias = Callable[[AsyncIterator[Any], Context], AsyncIterator[Any]]
ItemsSync: TypeAlias = Callable[[Iterator[Any], Any], Iterator[Any]]


@dataclass(frozen=True, slots=True)
class Layers:
    """One method's layers, as the runners below call them."""

    enter: Callable[[Context], None]  # request id and authorization, where the method runs (inline hot path)
    enter_async: Callable[[Context], Awaitable[None]]  # the same on the loop, before any other method
    admit: Callable[[Any, Context], None]  # the limits, once the request is read, where the method runs
    admit_async: Callable[[Any, Context], Awaitable[None]]  # the same, awaited on the loop
    finished: Callable[[str, float, object], None]  # every call's end: status name ("OK", "CANCELLED", ...),
    # seconds, and the response (OK) or the EcardError it answered (None: cancelled, or a stream)
    failed: Callable[[BaseException], EcardError]  # the error a raised exception answers with
    items: Items | None = None  # each item of a request stream, as it is read: the caller checked
    # again (a certificate denied since the stream began ends it) and the item charged (admission)
    items_sync: ItemsSync | None = None  # the same, for a stream run on its handler thread


class GuardedRegistry:
    """Takes the place of the server in the generated add_*Servicer_to_server functions: every method
    handler is wrapped once, then registered on the real server."""

    def __init__(
        self, server: Any, authorizer: Authorizer, placement: Placement,
        request_log: RequestLog | None = None, admission: Admission | None = None,
        limits: MessageLimits | None = None, *, loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """`loop`: the server is grpc's thread-pool server (rpc.threaded.ThreadedServer) and this is the
        event loop its async work runs on; a unary method then gets the threaded runner."""
        self._server = server
        self._loop = loop
        self._limits = limits or MessageLimits()
        self._authorizer = authorizer
        self._placement = placement
        self._request_log = request_log or RequestLog(verify_ok_per_second=20)
        self._admission = admission

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: the generated code registers the same handlers by name just after."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        wrapped = {name: self.wrap(f"/{service}/{name}", handler) for name, handler in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        self._server.add_registered_method_handlers(service, wrapped)

    def layers(self, method: str) -> Layers:
        """THE place where the guard's layers are composed, for one method. A call meets them in this
        order: the request log's request id, authorization, the reading of its request (the runner's,
        for a unary one), any admission control, the method; at its end, metrics, then the request log's
        line (then any other observer of finished calls); an error is mapped and crashes logged."""
        authorization = MethodAuthorization(self._authorizer, method)
        check, check_async, run = authorization.check, authorization.check_async, self._placement.run
        calls = self._request_log.method(method)
        begin, logged = calls.begin, calls.finished
        counted = metrics.MethodMetrics(method.rsplit("/", 1)[-1]).finished

        def enter(context: Context) -> None:
            begin(context)
            check(context)

        async def enter_async(context: Context) -> None:
            begin(context)
            await check_async(context, run)

        def finished(status_name: str, seconds: float, outcome: object = None) -> None:
            counted(status_name, seconds, outcome.reason if isinstance(outcome, EcardError) else None)
            logged(status_name, seconds, outcome)

        spans = tracing.server_spans(method)
        if spans is not None:  # tracing on: the call's span around every other layer
            span_begin, span_end = spans
            untraced_enter, untraced_enter_async, untraced_finished = enter, enter_async, finished

            def enter(context: Context) -> None:
                span_begin(context)
                untraced_enter(context)

            async def enter_async(context: Context) -> None:
                span_begin(context)
                await untraced_enter_async(context)

            def finished(status_name: str, seconds: float, outcome: object = None) -> None:
                try:
                    untraced_finished(status_name, seconds, outcome)
                finally:
                    span_end(status_name)

        failed = partial(crashes.as_error, method)
        charge_item = metered(self._admission, method) if self._admission is not None else None
        recheck = authorization.recheck

        async def items(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            async for request in requests:
                recheck(context)
                if charge_item is not None:
                    await charge_item()
                yield request

        charge_item_sync = None  # (a stream on a handler thread is only run by the thread-pool server)
        if self._admission is not None and self._loop is not None:
            charge_item_sync = metered_sync(self._admission, method, self._loop)

        def items_sync(requests: Iterator[Any], context: Any) -> Iterator[Any]:
            for request in requests:
                recheck(context)
                if charge_item_sync is not None:
                    charge_item_sync()
                yield request

        admit: Callable[[Any, Context], None] = admitted_by_nothing
        admit_async: Callable[[Any, Context], Awaitable[None]] = admitted_by_nothing_async
        finished_all: Callable[[str, float, object], None] = finished
        if self._admission is not None:
            admit, admit_async, finished_all = limited(self._admission, method, finished)
        return Layers(enter=enter, enter_async=enter_async, admit=admit, admit_async=admit_async,
                      finished=finished_all, failed=failed, items=items,
                      items_sync=items_sync)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        behavior: Callable[..., Any] = cast(Callable[..., Any], handler.unary_unary or handler.unary_stream
                                            or handler.stream_unary or handler.stream_stream)  # one is set
        layers = self.layers(method)
        placement = self._placement
        limit = self._limits.of(method)
        if handler.request_streaming:  # each message read by the method, after admission, parsed bounded
            read = None
        else:
            most = self._limits.max_batch if method == BATCH_METHOD else None
            read = bounded_reader(method, handler.request_deserializer, limit, most_fields=most)
        runner: Callable[..., Any]
        loop = self._loop
        if loop is not None and not handler.request_streaming and not handler.response_streaming:
            parse = bounded_parser(method, handler.request_deserializer, limit,
                                   most_fields=self._limits.max_batch if method == BATCH_METHOD else None)
            threaded = _threaded(layers, behavior, parse, loop)
            if placement.inline and is_hot_path(behavior) and not inspect.iscoroutinefunction(behavior):
                hot_path(threaded)  # from memory only: rpc.threaded runs it on its hot pool
            return lazily_read(handler, threaded)
        if loop is not None and handler.request_streaming and inspect.isgeneratorfunction(behavior):
            # a stream answered by a plain generator (VerifyStream): all on its handler thread
            return handler_like(method, handler, _threaded_stream(layers, behavior, tolerant(
                handler.request_deserializer, method, limit)), limit)
        if inspect.isasyncgenfunction(behavior):
            runner = _streaming_out(layers, behavior, read, placement.offload)
        elif placement.inline and is_hot_path(behavior) and not inspect.iscoroutinefunction(behavior) and read:
            runner = _inline(layers, behavior, read, placement.offload)
        else:
            if inspect.iscoroutinefunction(behavior):  # a streaming one writes with context.write
                answer = behavior
            elif handler.response_streaming:
                raise TypeError(f"{method}: a streaming response needs an async method")
            elif handler.request_streaming:

                async def answer(request: Any, context: Context) -> Any:  # a request stream, read on the loop
                    requests = blocking_requests(request, asyncio.get_running_loop())
                    return await placement.offload(behavior, requests, context)

            else:

                async def answer(request: Any, context: Context) -> Any:
                    return await placement.offload(behavior, request, context)

            runner = _awaited(layers, answer, read, placement.offload)
        if read is None:
            return handler_like(method, handler, runner, limit)
        return lazily_read(handler, runner)


# -- runners: one per shape of method, each calling the layers in the same order ----------------------
async def _failed(layers: Layers, context: Context, exc: Exception, start: float) -> None:
    """Ends a call that raised: the error mapped (a crash logged), counted, and answered."""
    error = layers.failed(exc)
    layers.finished(error.status_name, _perf() - start, error)
    await abort(context, error)


async def _request(
    layers: Layers, requests: Any, context: Context, read: Reader | None, offload: Callable[..., Awaitable[Any]]
) -> Any:
    """Authorizes the caller, then reads its request (a unary one) and admits the call by the limits; a
    request stream whose items are charged comes back metered."""
    await layers.enter_async(context)
    request = requests if read is None else await read(context, offload)
    await layers.admit_async(request, context)
    if read is None and layers.items is not None and hasattr(request, "__aiter__"):
        request = layers.items(request, context)
    return request


def _inline(
    layers: Layers, behavior: Callable[..., Any], read: Reader, offload: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    enter, admit, finished = layers.enter, layers.admit, layers.finished

    async def inline(requests: Any, context: Context) -> Any:
        """Awaits only its request's read: nothing to cancel once it runs."""
        start = _perf()
        try:
            enter(context)
            request = await read(context, offload)
            admit(request, context)
            response = behavior(request, context)
        except asyncio.CancelledError:
            finished("CANCELLED", _perf() - start, None)
            raise
        except Exception as exc:
            await _failed(layers, context, exc, start)
        finished("OK", _perf() - start, response)
        return response

    return inline


def _awaited(
    layers: Layers, answer: Callable[..., Awaitable[Any]], read: Reader | None, offload: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    finished = layers.finished

    async def call(requests: Any, context: Context) -> Any:
        start = _perf()
        try:
            request = await _request(layers, requests, context, read, offload)
            response = await answer(request, context)
        except asyncio.CancelledError:  # the caller went away or its deadline passed (pool work runs on)
            finished("CANCELLED", _perf() - start, None)
            raise
        except Exception as exc:
            await _failed(layers, context, exc, start)
        finished("OK", _perf() - start, response)
        return response

    return call


def _streaming_out(
    layers: Layers, behavior: Callable[..., AsyncIterator[Any]], read: Reader | None,
    offload: Callable[..., Awaitable[Any]],
) -> Callable[..., AsyncIterator[Any]]:
    finished = layers.finished

    async def stream_out(requests: Any, context: Context) -> AsyncIterator[Any]:
        start = _perf()
        try:
            request = await _request(layers, requests, context, read, offload)
            async for response in behavior(request, context):
                yield response
        except asyncio.CancelledError:
            finished("CANCELLED", _perf() - start, None)
            raise
        except Exception as exc:
            await _failed(layers, context, exc, start)
            return
        finished("OK", _perf() - start, None)

    return stream_out


def _failed_threaded(layers: Layers, context: Any, exc: Exception, start: float) -> None:
    """`_failed` on a handler thread of the sync server (raises, as its abort does)."""
    error = layers.failed(exc)
    layers.finished(error.status_name, _perf() - start, error)
    abort_threaded(context, error)


def _threaded(
    layers: Layers, behavior: Callable[..., Any], parse: Callable[[Any], Any], loop: asyncio.AbstractEventLoop
) -> Callable[..., Any]:
    """A unary method on a handler thread of the sync server (rpc.threaded): the caller authorized
    (a stale directory reloaded right here), its request read and parsed bounded only then, admitted
    (a lease of the shared bucket waited for here), and the method run here, or, when it is async, on
    the loop while this thread waits for it."""
    enter, admit, finished = layers.enter, layers.admit, layers.finished
    awaited = inspect.iscoroutinefunction(behavior)
    on_loop = asyncio.run_coroutine_threadsafe

    def threaded(requests: Any, context: Any) -> Any:
        start = _perf()
        try:
            enter(context)
            request = read_bounded(requests, parse)
            admit(request, context)
            if awaited:
                future = on_loop(behavior(request, context), loop)
                context.add_callback(future.cancel)  # the call ended first: it stops waiting there
                response = future.result()
            else:
                response = behavior(request, context)
        except concurrent.futures.CancelledError:
            finished("CANCELLED", _perf() - start, None)
            raise
        except Exception as exc:
            _failed_threaded(layers, context, exc, start)
        if not context.is_active():  # the caller went away or its deadline passed while it ran
            finished("CANCELLED", _perf() - start, None)
            return response
        finished("OK", _perf() - start, response)
        return response

    return threaded


def _threaded_stream(
    layers: Layers, behavior: Callable[..., Iterator[Any]], parse: Callable[[bytes], Any]
) -> Callable[..., Iterator[Any]]:
    """A request stream answered by a plain generator, on its handler thread of the sync server
    (rpc.threaded): the caller authorized and the call admitted before any message is read; each
    message parsed bounded as the method reads it, the caller checked again and the item charged; every
    step in the call's own context (the thread serves other calls after it)."""
    enter, admit, finished, items = layers.enter, layers.admit, layers.finished, layers.items_sync
    assert items is not None

    def run(requests: Iterator[bytes], context: Any) -> Iterator[Any]:
        start = _perf()
        try:
            enter(context)
            admit(None, context)
            yield from behavior(items(map(parse, requests), context), context)
        except GeneratorExit:  # the server stopped asking for answers: the call ended first
            finished("CANCELLED", _perf() - start, None)
            raise
        except grpc.RpcError:  # the request stream: the caller went away
            finished("CANCELLED", _perf() - start, None)
            return
        except Exception as exc:
            _failed_threaded(layers, context, exc, start)
        finished("OK", _perf() - start, None)

    def threaded_stream(requests: Iterator[bytes], context: Any) -> Iterator[Any]:
        own = contextvars.Context()
        return _in_context(own, own.run(run, requests, context))

    return threaded_stream


def _in_context(own: contextvars.Context, responses: Iterator[Any]) -> Iterator[Any]:
    """`responses`, each step run in `own` (a generator runs in its caller's context otherwise)."""
    step = own.run
    try:
        while True:
            try:
                response = step(next, responses)
            except StopIteration:
                return
            yield response
    finally:
        step(responses.close)  # type: ignore[attr-defined]
