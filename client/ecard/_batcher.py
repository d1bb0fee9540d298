"""A micro-batcher for merchant gateways: many concurrent `verify` calls become few VerifyBatch calls.

A gateway relaying hundreds of counters pays gRPC's per-call cost on every Verify. `VerifyBatcher`
holds each call for at most `window` seconds (default 2 ms), sends everything that arrived meanwhile
as one VerifyBatch (answers come back in request order), and resolves each caller with its own answer.
An error of the whole batch (UNAVAILABLE, PERMISSION_DENIED, ...) is raised to every caller in it.

    async with AsyncPharmacyClient(target, merchant_id="gw-1") as client:
        batcher = VerifyBatcher(client)
        answer = await batcher.verify(qr_text, purpose=Purpose.IDENTITY)   # from many tasks at once
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ecard._client import verify_request
from ecard.v1 import types_pb2, verifier_pb2

if TYPE_CHECKING:
    from ecard._client import AsyncPharmacyClient

MAX_BATCH = 1000  # the server's limit per VerifyBatch


class VerifyBatcher:
    def __init__(self, client: AsyncPharmacyClient, *, window: float = 0.002, max_batch: int = MAX_BATCH) -> None:
        if not 0 <= window <= 0.1:
            raise ValueError("window must be between 0 and 0.1 seconds")
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH}")
        self._client = client
        self._window = window
        self._max_batch = max_batch
        self._pending: list[tuple[verifier_pb2.VerifyRequest, asyncio.Future[verifier_pb2.VerifyResponse]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.batches_sent = 0

    async def verify(
        self, token: str, *, purpose: int = types_pb2.PURPOSE_IDENTITY,
        min_assurance: int = types_pb2.ASSURANCE_UNSPECIFIED, terminal_id: str = "", request_id: str = "",
    ) -> verifier_pb2.VerifyResponse:
        """Like AsyncPharmacyClient.verify (same fields), answered through a shared VerifyBatch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[verifier_pb2.VerifyResponse] = loop.create_future()
        self._pending.append((verify_request(
            token, purpose=purpose, min_assurance=min_assurance, terminal_id=terminal_id, request_id=request_id
        ), future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._window, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _send(
        self, batch: list[tuple[verifier_pb2.VerifyRequest, asyncio.Future[verifier_pb2.VerifyResponse]]]
    ) -> None:
        self.batches_sent += 1
        try:
            answers = await self._client.verify_batch([request for request, _ in batch])
        except Exception as exc:  # one failure of the whole call: every caller in it hears of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():  # a caller that gave up (cancelled) is skipped
                future.set_result(answer)

    async def drain(self) -> None:
        """Sends what is waiting and waits for every batch in flight."""
        self._flush()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
