"""The guard: what every call shares, composed around each method handler once, at registration.

Each concern has its own module; this one only composes them, in `GuardedRegistry.layers` (the one
place to add a layer), and runs the result in the shape the method has:

    parsing         rpc.parsing     a request that does not parse answers INVALID_ARGUMENT
    authorization   rpc.auth        principal and role table (MethodAuthorization)
    admission       rpc.admission   the limits: rate per principal, calls in flight (core.limits)
    metrics         rpc.metrics     requests and latency by method and code
    request log     rpc.request_log one line per call, its request id sent back as x-request-id
    error mapping   rpc.status      EcardError -> gRPC status with ErrorInfo
    crash logging   rpc.crashes     anything else: `rpc_crashed` logged, INTERNAL answered
    placement       rpc.placement   on the event loop or on the pool

    registry = GuardedRegistry(server, authorizer, placement, admission)
    verifier_pb2_grpc.add_VerifierServicer_to_server(servicer, registry)  # instead of the server

Every call is admitted on the event loop (authorization from memory, a stale directory read through
the placement) before its method runs, so its principal is set in the call's own context and the
pool thread that runs a plain method inherits it. The inline hot path (a `@hot_path` method of a
deployment that keeps its state in this process) is admitted and run in one Python call, with no
await before its answer.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeAlias

import grpc
import grpc.aio

from ecard.errors import EcardError
from ecard_server.core.limits import Admission
from ecard_server.rpc import crashes, metrics
from ecard_server.rpc.admission import limited, metered
from ecard_server.rpc.auth import Authorizer, MethodAuthorization
from ecard_server.rpc.parsing import Undecodable, handler_like
from ecard_server.rpc.placement import Placement, blocking_requests, hot_path, is_hot_path
from ecard_server.rpc.request_log import RequestLog
from ecard_server.rpc.status import abort

__all__ = ["GuardedRegistry", "Layers", "Placement", "hot_path"]
_perf = time.perf_counter
Context: TypeAlias = grpc.aio.ServicerContext
Items: TypeAlias = Callable[[AsyncIterator[Any], Context], AsyncIterator[Any]]


@dataclass(frozen=True, slots=True)
class Layers:
    """One method's layers, as the runners below call them."""

    admit: Callable[[Any, Context], None]  # before the method, where it runs (the inline hot path)
    admit_async: Callable[[Any, Context], Awaitable[None]]  # on the loop, before any other method
    finished: Callable[[str, float, object], None]  # every call's end: status name ("OK", "CANCELLED", ...),
    # seconds, and the response (OK) or the EcardError it answered (None: cancelled, or a stream)
    failed: Callable[[BaseException], EcardError]  # the error a raised exception answers with
    items: Items | None = None  # each item of a request stream, as it is read: the caller checked
    # again (a certificate denied since the stream began ends it) and the item charged (admission)


class GuardedRegistry:
    """Takes the place of the server in the generated add_*Servicer_to_server functions: every method
    handler is wrapped once, then registered on the real server."""

    def __init__(
        self, server: grpc.aio.Server, authorizer: Authorizer, placement: Placement,
        request_log: RequestLog | None = None, admission: Admission | None = None,
    ) -> None:
        self._server = server
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
        order: the request log's request id, parsing's answer, authorization (then any admission
        control), the method; at its end, metrics, then the request log's line (then any other observer
        of finished calls); an error is mapped and crashes logged."""
        authorization = MethodAuthorization(self._authorizer, method)
        check, check_async, run = authorization.check, authorization.check_async, self._placement.run
        calls = self._request_log.method(method)
        begin, logged = calls.begin, calls.finished
        counted = metrics.MethodMetrics(method.rsplit("/", 1)[-1]).finished

        def admit(request: Any, context: Context) -> None:
            begin(context)
            if request.__class__ is Undecodable:
                raise request.error
            check(context)

        async def admit_async(request: Any, context: Context) -> None:
            begin(context)
            if request.__class__ is Undecodable:
                raise request.error
            await check_async(context, run)

        def finished(status_name: str, seconds: float, outcome: object = None) -> None:
            counted(status_name, seconds, outcome.reason if isinstance(outcome, EcardError) else None)
            logged(status_name, seconds, outcome)

        failed = partial(crashes.as_error, method)
        charge_item = metered(self._admission, method) if self._admission is not None else None
        recheck = authorization.recheck

        async def items(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            async for request in requests:
                recheck(context)
                if charge_item is not None:
                    await charge_item()
                yield request

        layers = Layers(admit=admit, admit_async=admit_async, finished=finished, failed=failed, items=items)
        if self._admission is None:
            return layers
        return Layers(*limited(self._admission, method, layers.admit, layers.admit_async, layers.finished), failed,
                      items)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        behavior = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        layers = self.layers(method)
        placement = self._placement
        if inspect.isasyncgenfunction(behavior):
            return handler_like(method, handler, _streaming_out(layers, behavior))
        if placement.inline and is_hot_path(behavior) and not inspect.iscoroutinefunction(behavior):
            return handler_like(method, handler, _inline(layers, behavior))
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

        return handler_like(method, handler, _awaited(layers, answer))


# -- runners: one per shape of method, each calling the layers in the same order ----------------------
async def _failed(layers: Layers, context: Context, exc: Exception, start: float) -> None:
    """Ends a call that raised: the error mapped (a crash logged), counted, and answered."""
    error = layers.failed(exc)
    layers.finished(error.status_name, _perf() - start, error)
    await abort(context, error)


def _inline(layers: Layers, behavior: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    admit, finished = layers.admit, layers.finished

    async def inline(request: Any, context: Context) -> Any:
        """Answers before its first await: nothing to cancel midway."""
        start = _perf()
        try:
            admit(request, context)
            response = behavior(request, context)
        except Exception as exc:
            await _failed(layers, context, exc, start)
        finished("OK", _perf() - start, response)
        return response

    return inline


def _awaited(layers: Layers, answer: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    admit_async, finished = layers.admit_async, layers.finished

    async def call(request: Any, context: Context) -> Any:
        start = _perf()
        try:
            await admit_async(request, context)
            response = await answer(request, context)
        except asyncio.CancelledError:  # the caller went away or its deadline passed (pool work runs on)
            finished("CANCELLED", _perf() - start, None)
            raise
        except Exception as exc:
            await _failed(layers, context, exc, start)
        finished("OK", _perf() - start, response)
        return response

    return call


def _streaming_out(layers: Layers, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    admit_async, finished, items = layers.admit_async, layers.finished, layers.items

    async def stream_out(request: Any, context: Context) -> AsyncIterator[Any]:
        start = _perf()
        try:
            await admit_async(request, context)
            if items is not None and hasattr(request, "__aiter__"):
                request = items(request, context)
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
