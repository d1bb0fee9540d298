"""What every call shares, wrapped around each method handler once, when it is registered: who is
calling, the role table, metrics, error mapping, and where the work runs.

The server is grpc.aio: one event loop takes every call. Servicer methods are plain functions of
(request, context) that raise ecard.errors, or async ones; the guard decides where each runs:

- on the event loop itself: async methods, and plain methods marked `@hot_path` when the deployment
  keeps every piece of hot-path state in this process (`Placement.inline`): Verify is then one Python
  call between the transport's read and write, with no thread hop;
- on the blocking-work pool: every other plain method (settlement and admin writes, VerifyBatch's
  milliseconds of signatures, and the `@hot_path` ones of a deployment on Redis or PostgreSQL, which
  use async methods for their hot path instead: see rpc.verifier).

Async methods (health, reflection, VerifyStream, Verify on Redis) have their principal checked on
the loop from the in-memory directories; a directory that must be reloaded is read on the pool. A
client stream handled by a plain method is read on the loop and handed to the pool thread message
by message.

    registry = GuardedRegistry(server, authorizer, placement)
    verifier_pb2_grpc.add_VerifierServicer_to_server(servicer, registry)  # instead of the server
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc
import grpc.aio

from ecard.errors import EcardError, Internal, InvalidArgument
from ecard_server.core.caches import CacheMiss
from ecard_server.rpc import metrics
from ecard_server.rpc.auth import Authorizer, allowed_kinds, current_principal
from ecard_server.rpc.status import to_status

log = logging.getLogger("ecard.rpc")
_perf = time.perf_counter
_F = TypeVar("_F", bound=Callable[..., Any])
_HOT = "_ecard_hot_path"


def hot_path(method: _F) -> _F:
    """Marks a servicer method that touches only in-memory state when the deployment keeps its hot-path
    state in this process: it may then run on the event loop. It must not block otherwise."""
    setattr(method, _HOT, True)
    return method


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


async def abort(context: grpc.aio.ServicerContext, exc: EcardError) -> None:
    status = to_status(exc)
    await context.abort(status.code, status.details, status.trailing_metadata)


def _blocking_requests(requests: AsyncIterator[Any], loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """The messages of a client stream, read on the loop, for a plain method running on a pool thread."""
    iterator = requests.__aiter__()

    async def following() -> Any:
        return await iterator.__anext__()

    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(following(), loop).result()
        except StopAsyncIteration:
            return


class _Undecodable:
    """What a unary request that does not parse becomes: the call answers INVALID_ARGUMENT with `error`."""

    __slots__ = ("error",)

    def __init__(self, error: EcardError) -> None:
        self.error = error


def _tolerant(deserialize: Callable[[bytes], Any] | None, method: str, streaming: bool) -> Callable[[bytes], Any]:
    """The request parser, with a bad message turned into an INVALID_ARGUMENT for the caller (the server
    itself would answer UNKNOWN and echo the parser's exception): in a stream it raises, and the guard
    maps it; a unary call's bad request becomes an _Undecodable that the guard answers."""
    if deserialize is None:
        raise TypeError(f"{method}: no request deserializer")

    message = f"{method.rsplit('/', 1)[-1]}: the request is not a valid message"

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:
            error = InvalidArgument(message, "MALFORMED_REQUEST")
            if streaming:
                raise error from None
            return _Undecodable(error)

    return parse


class GuardedRegistry:
    """Takes the place of the server in the generated add_*Servicer_to_server functions: every method
    handler is wrapped once, then registered on the real server."""

    def __init__(self, server: grpc.aio.Server, authorizer: Authorizer, placement: Placement) -> None:
        self._server = server
        self._authorizer = authorizer
        self._placement = placement

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: the generated code registers the same handlers by name just after."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        wrapped = {name: self.wrap(f"/{service}/{name}", handler) for name, handler in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        self._server.add_registered_method_handlers(service, wrapped)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        kinds = allowed_kinds(method)
        authorize = self._authorizer.authorize
        placement = self._placement
        finished = metrics.MethodMetrics(method.rsplit("/", 1)[-1]).finished
        set_principal = current_principal.set
        behavior = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream

        def failed(exc: BaseException, start: float) -> EcardError:
            """The error a call ends with, counted; anything but an EcardError is logged and hidden."""
            if isinstance(exc, EcardError):
                error = exc
            else:
                # Where it failed, never the exception's text: it may quote a row (an identity number).
                frames = traceback.extract_tb(exc.__traceback__)[-6:]
                where = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames]
                log.error(json.dumps({"event": "rpc_crashed", "method": method, "error": type(exc).__name__,
                                      "at": where}))
                error = Internal("internal error", "INTERNAL")
            finished(error.status_name, _perf() - start)
            return error

        def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
            """The principal checked and set, then the plain method (on the loop or a pool thread)."""
            if request.__class__ is _Undecodable:
                raise request.error
            if kinds is not None:
                set_principal(authorize(method, kinds, context))
            return behavior(request, context)

        async def admitted(request: Any, context: grpc.aio.ServicerContext) -> None:
            if request.__class__ is _Undecodable:
                raise request.error
            if kinds is None:
                return
            try:  # from memory; a stale directory is read where the deployment's store reads may run
                principal = authorize(method, kinds, context, cached_only=True)
            except CacheMiss:
                principal = await placement.run(authorize, method, kinds, context)
            set_principal(principal)

        if inspect.isasyncgenfunction(behavior):

            async def stream_out(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                start = _perf()
                try:
                    await admitted(request, context)
                    async for response in behavior(request, context):
                        yield response
                except asyncio.CancelledError:
                    finished("CANCELLED", _perf() - start)
                    raise
                except Exception as exc:
                    await abort(context, failed(exc, start))
                    return
                finished("OK", _perf() - start)

            return _handler(method, handler, stream_out)

        if placement.inline and getattr(behavior, _HOT, False) and not inspect.iscoroutinefunction(behavior):

            async def inline(request: Any, context: grpc.aio.ServicerContext) -> Any:
                """Answers before its first await: nothing to cancel midway."""
                start = _perf()
                try:
                    response = checked(request, context)
                except Exception as exc:
                    await abort(context, failed(exc, start))
                finished("OK", _perf() - start)
                return response

            return _handler(method, handler, inline)

        if inspect.iscoroutinefunction(behavior):  # a streaming one writes with context.write

            async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await admitted(request, context)
                return await behavior(request, context)

        elif handler.response_streaming:
            raise TypeError(f"{method}: a streaming response needs an async method")

        elif handler.request_streaming:

            async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:  # a request stream
                requests = _blocking_requests(request, asyncio.get_running_loop())
                return await placement.offload(checked, requests, context)

        else:

            async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
                return await placement.offload(checked, request, context)

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = _perf()
            try:
                response = await answer(request, context)
            except asyncio.CancelledError:  # the caller went away or its deadline passed (pool work runs on)
                finished("CANCELLED", _perf() - start)
                raise
            except Exception as exc:
                await abort(context, failed(exc, start))
            finished("OK", _perf() - start)
            return response

        return _handler(method, handler, call)


def _handler(method: str, handler: grpc.RpcMethodHandler, behavior: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """A handler of the same kind and serializers as `handler`, running `behavior`."""
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    parse = _tolerant(handler.request_deserializer, method, handler.request_streaming)
    return make(behavior, parse, handler.response_serializer)  # type: ignore[operator]
