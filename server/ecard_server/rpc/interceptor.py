"""One server interceptor for what every call shares: who is calling, metrics, and error mapping.

Handlers are wrapped once per method and cached, so a call pays for a dictionary lookup, the
principal check, two clock reads and a few additions to this thread's metric counts, nothing more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from ecard.errors import EcardError
from ecard_server.rpc import metrics
from ecard_server.rpc.auth import Authorizer, allowed_kinds, current_principal
from ecard_server.rpc.status import abort

log = logging.getLogger("ecard.rpc")
_perf = time.perf_counter


class CallGuard(grpc.ServerInterceptor):
    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer
        self._wrapped: dict[str, grpc.RpcMethodHandler | None] = {}

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        method = details.method
        try:
            return self._wrapped[method]
        except KeyError:
            handler = continuation(details)
            wrapped = None if handler is None else self._wrap(method, handler)
            self._wrapped[method] = wrapped
            return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        kinds = allowed_kinds(method)
        authorize = self._authorizer.authorize
        finished = metrics.MethodMetrics(method.rsplit("/", 1)[-1]).finished
        set_principal, reset_principal = current_principal.set, current_principal.reset

        def unary(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                start = _perf()
                try:
                    if kinds is None:
                        response = behavior(request, context)
                    else:
                        token = set_principal(authorize(method, kinds, context))
                        try:
                            response = behavior(request, context)
                        finally:
                            reset_principal(token)
                except EcardError as exc:
                    finished(exc.status_name, _perf() - start)
                    abort(context, exc)
                finished("OK", _perf() - start)
                return response

            return call

        def streaming(behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]]) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                start = _perf()
                try:
                    token = None if kinds is None else set_principal(authorize(method, kinds, context))
                    try:
                        yield from behavior(request, context)
                    finally:
                        if token is not None:
                            reset_principal(token)
                except EcardError as exc:
                    finished(exc.status_name, _perf() - start)
                    abort(context, exc)
                finished("OK", _perf() - start)

            return call

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                unary(handler.stream_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                streaming(handler.unary_stream), handler.request_deserializer, handler.response_serializer
            )
        return grpc.stream_stream_rpc_method_handler(
            streaming(handler.stream_stream), handler.request_deserializer, handler.response_serializer
        )
