"""Tolerant request parsing: a request that does not parse answers INVALID_ARGUMENT, with a reason.

The server itself would answer UNKNOWN and echo the parser's exception. In a stream the parser
raises the InvalidArgument (the guard maps it); a unary call's bad request becomes an Undecodable,
which the guard answers before anything else looks at the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from ecard.errors import EcardError, InvalidArgument


class Undecodable:
    """What a unary request that does not parse becomes: the call answers with `error`."""

    __slots__ = ("error",)

    def __init__(self, error: EcardError) -> None:
        self.error = error


def tolerant(deserialize: Callable[[bytes], Any] | None, method: str, streaming: bool) -> Callable[[bytes], Any]:
    """The request parser of `method`, with a bad message turned into an InvalidArgument."""
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
            return Undecodable(error)

    return parse


_MAKERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def handler_like(method: str, handler: grpc.RpcMethodHandler, behavior: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """A handler of the same kind and serializers as `handler`, running `behavior`, parsing tolerantly."""
    make = _MAKERS[(handler.request_streaming, handler.response_streaming)]
    parse = tolerant(handler.request_deserializer, method, handler.request_streaming)
    return make(behavior, parse, handler.response_serializer)  # type: ignore[operator]
