"""A channel's events as an async iterator that reconnects and resumes (Cards.WatchEvents).

    async with ChannelEvents(target, issuer_id="icbc-nb", after=saved_cursor) as stream:
        async for event in stream:
            handle(event)                 # card status, binding, settlement, refund, replacement, key expiry
            save_cursor(event.cursor)     # after handling: at least once, never lost

The server keeps every event in its store (written in the transaction of the change) and numbers
each channel's events without gaps. When the stream breaks (a replica stopped, a network cut, the
server draining) the iterator waits a jittered backoff and opens it again after the last event it
handed out, on whichever replica answers: nothing is missed, and an event is seen twice only if the
consumer restarts from a cursor it saved before handling it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

import grpc
import grpc.aio

from ecard._options import ClientOptions
from ecard._rpc_errors import from_grpc_error
from ecard._transport import Targets, aio_channel, principal_metadata
from ecard.v1 import cards_pb2, cards_pb2_grpc, wire

# A broken or ended stream with one of these is opened again; any other code is the caller's to see
# (PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION EVENTS_PRUNED ...).
RECONNECT_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
})


class ChannelEvents:
    """The events of one channel from after `after` (0: the oldest the server keeps), for ever."""

    def __init__(
        self, target: Targets, *, issuer_id: str, after: int = 0, options: ClientOptions | None = None,
        max_backoff: float = 2.0, kinds: Sequence[int] = (),
    ) -> None:
        self.options = options or ClientOptions()
        self.issuer_id = issuer_id
        self.kinds = list(kinds)
        """Only events of these ChannelEventKinds (none: all); the cursor then passes over the others."""
        self.cursor = after
        """The cursor of the last event handed out (where a reconnection resumes)."""
        self.reconnects = 0
        """How many times the stream was opened again."""
        self._max_backoff = max_backoff
        self._channel = aio_channel(target, self.options)
        self._stub = cards_pb2_grpc.CardsStub(self._channel)
        self._metadata = principal_metadata(f"channel:{issuer_id}", self.options)
        self._call: grpc.aio.UnaryStreamCall[cards_pb2.WatchEventsRequest, cards_pb2.ChannelEvent] | None = None
        self._closed = False

    def __aiter__(self) -> AsyncIterator[cards_pb2.ChannelEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[cards_pb2.ChannelEvent]:
        failures = 0
        while not self._closed:
            request = cards_pb2.WatchEventsRequest(issuer_id=self.issuer_id, after=self.cursor,
                                                   kinds=wire(self.kinds))
            # No deadline (the stream is endless); wait_for_ready: a reconnection waits for a live replica.
            call = self._stub.WatchEvents(request, metadata=self._metadata, wait_for_ready=True)
            self._call = call
            try:
                async for message in call:
                    failures = 0
                    self.cursor = message.cursor
                    yield message
            except grpc.RpcError as exc:
                if self._closed:
                    return
                if exc.code() not in RECONNECT_CODES:
                    raise from_grpc_error(exc) from exc
            finally:
                call.cancel()
            if self._closed:
                return
            # The stream ended (the server drained) or broke: back off, then resume after the cursor.
            base = self.options.retry.initial_backoff * self.options.retry.multiplier ** min(failures, 16)
            await asyncio.sleep(random.uniform(0, min(self._max_backoff, base)))
            failures += 1
            self.reconnects += 1

    async def aclose(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()
        await self._channel.close()

    async def __aenter__(self) -> ChannelEvents:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
