"""Request reading: bounded per method, after authentication, and tolerant of bad messages.

A request that does not parse answers INVALID_ARGUMENT (MALFORMED_REQUEST), not the UNKNOWN the server
itself would answer. Each method takes messages up to its own size (`MessageLimits`: a Verify a few
hundred bytes, a batch its maximum); a larger one answers INVALID_ARGUMENT (REQUEST_TOO_LARGE).

A unary request is not read by the transport before the call starts: its method is registered as a
client stream (the same bytes on the wire), and the guard reads the one message itself once the caller
is authorized (`bounded_reader`). So a caller without a principal never gets its message buffered past
HTTP/2's initial window, nor parsed; a batch's items are counted on the wire before it is parsed (a
batch of a million empty items costs no parse), and a large message is parsed off the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from ecard.errors import InvalidArgument

VERIFY_METHODS = ("/ecard.v1.Verifier/Verify", "/ecard.v1.Verifier/VerifyStream", "/ecard.v1.Verifier/GetVerification")
BATCH_METHOD = "/ecard.v1.Verifier/VerifyBatch"
PARSE_ON_LOOP_BYTES = 64 << 10  # larger messages are parsed on the pool


@dataclass(frozen=True)
class MessageLimits:
    """The largest request message each method takes, in bytes."""

    verify_bytes: int = 2 << 10
    """A Verify: a token of at most 1,024 characters, request and terminal ids, a merchant id."""
    default_bytes: int = 256 << 10
    """Anything else: a basket of 500 lines fits with room to spare."""
    max_batch: int = 1000
    """Items of a VerifyBatch: it takes max_batch Verifies."""

    def of(self, method: str) -> int:
        if method in VERIFY_METHODS:
            return self.verify_bytes
        if method == BATCH_METHOD:
            return self.max_batch * (self.verify_bytes + 4)  # each item with its tag and length
        return self.default_bytes

    @property
    def largest(self) -> int:
        """What the transport is told to take at most (grpc.max_receive_message_length)."""
        return max(self.default_bytes, self.of(BATCH_METHOD))


def _too_large(method: str, size: int, limit: int) -> InvalidArgument:
    return InvalidArgument(f"{method.rsplit('/', 1)[-1]}: the request is {size} bytes, above the {limit} it takes",
                           "REQUEST_TOO_LARGE")


def fields_at_most(data: bytes, most: int) -> bool:
    """Whether the message `data` has at most `most` top-level fields, read off the wire format and
    stopping at the first one past `most` (malformed data is left to the parser)."""
    pos, end, count = 0, len(data), 0
    try:
        while pos < end:
            key, pos = _varint(data, pos)
            wire = key & 7
            if wire == 2:
                length, pos = _varint(data, pos)
                pos += length
            elif wire == 0:
                pos = _varint(data, pos)[1]
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            else:
                return True
            count += 1
            if count > most:
                return False
    except IndexError:
        return True
    return True


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise IndexError


Offload = Callable[..., Awaitable[Any]]
Reader = Callable[[grpc.aio.ServicerContext, Offload], Awaitable[Any]]


def bounded_parser(
    method: str, deserialize: Callable[[bytes], Any] | None, limit: int, *, most_fields: int | None = None
) -> Callable[[Any], Any]:
    """What the one request message of a lazily read unary call goes through once read (bytes, or
    grpc.aio.EOF when none came): at most `limit` bytes, at most `most_fields` top-level fields when
    given, parsed or refused."""
    if deserialize is None:
        raise TypeError(f"{method}: no request deserializer")
    name = method.rsplit("/", 1)[-1]
    malformed = f"{name}: the request is not a valid message"

    def parse(data: Any) -> Any:
        if not isinstance(data, bytes):
            raise InvalidArgument(f"{name}: no request message", "MALFORMED_REQUEST")
        if len(data) > limit:
            raise _too_large(method, len(data), limit)
        if most_fields is not None and not fields_at_most(data, most_fields):
            raise InvalidArgument(f"a batch holds at most {most_fields} requests", "BATCH_TOO_LARGE")
        try:
            return deserialize(data)
        except Exception:
            raise InvalidArgument(malformed, "MALFORMED_REQUEST") from None

    return parse


def bounded_reader(
    method: str, deserialize: Callable[[bytes], Any] | None, limit: int, *, most_fields: int | None = None
) -> Reader:
    """Reads the one request message of a lazily read unary call on the event loop (`bounded_parser`;
    parsed on `offload` when large)."""
    parse = bounded_parser(method, deserialize, limit, most_fields=most_fields)

    async def read(context: grpc.aio.ServicerContext, offload: Offload) -> Any:
        data = await context.read()
        if isinstance(data, bytes) and PARSE_ON_LOOP_BYTES < len(data) <= limit:
            return await offload(parse, data)
        return parse(data)

    return read


def read_bounded(requests: Iterator[Any], parse: Callable[[Any], Any]) -> Any:
    """On a handler thread of the sync server: the one request message of a lazily read unary call,
    read only now (the caller already authorized) and put through `parse` (bounded_parser)."""
    return parse(next(requests, None))


def tolerant(
    deserialize: Callable[[bytes], Any] | None, method: str, limit: int | None = None
) -> Callable[[bytes], Any]:
    """The parser of each message of a client stream of `method`: a bad or oversize one raises
    InvalidArgument where the method reads it (the guard answers it)."""
    if deserialize is None:
        raise TypeError(f"{method}: no request deserializer")

    message = f"{method.rsplit('/', 1)[-1]}: the request is not a valid message"

    def parse(data: bytes) -> Any:
        try:
            if limit is not None and len(data) > limit:
                raise _too_large(method, len(data), limit)
            return deserialize(data)
        except InvalidArgument:
            raise
        except Exception:
            raise InvalidArgument(message, "MALFORMED_REQUEST") from None

    return parse


_MAKERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def handler_like(
    method: str, handler: grpc.RpcMethodHandler, behavior: Callable[..., Any], limit: int | None = None
) -> grpc.RpcMethodHandler:
    """A handler of the same kind and serializers as `handler` (a client stream), running `behavior`."""
    make = _MAKERS[(handler.request_streaming, handler.response_streaming)]
    parse = tolerant(handler.request_deserializer, method, limit)
    return make(behavior, parse, handler.response_serializer)  # type: ignore[operator]


def lazily_read(handler: grpc.RpcMethodHandler, behavior: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """The handler of a unary-request method registered as a client stream of raw bytes: `behavior`
    reads the one message itself (bounded_reader), after authorization."""
    make = _MAKERS[(True, handler.response_streaming)]
    return make(behavior, None, handler.response_serializer)  # type: ignore[operator]
