"""The call guard (rpc/guard.py) on a real grpc.aio server in this process: where each call runs, whose
principal it sees, and what a caller learns when a method fails."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import grpc.aio
import pytest

from ecard.errors import NotFound
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from ecard_server.app import Deployment
from ecard_server.config import Settings
from ecard_server.rpc import metrics
from ecard_server.rpc.auth import Authorizer, own_id, principal_from_metadata
from ecard_server.rpc.guard import GuardedRegistry, Placement, hot_path


class Probe(verifier_pb2_grpc.VerifierServicer):
    """Answers with the principal and the thread each call ran on; request_id picks a failure."""

    def __init__(self) -> None:
        self.threads: dict[str, str] = {}

    def _answer(self, request: verifier_pb2.VerifyRequest, method: str) -> verifier_pb2.VerifyResponse:
        self.threads[method] = threading.current_thread().name
        if request.request_id == "crash":
            raise RuntimeError("secret 330206199001011234 in an exception message")
        if request.request_id == "missing":
            raise NotFound("no such thing", "NOTHING_HERE")
        return verifier_pb2.VerifyResponse(request_id=own_id(""), reason=t.REASON_OK)

    @hot_path
    def Verify(
        self, request: verifier_pb2.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> verifier_pb2.VerifyResponse:
        return self._answer(request, "Verify")

    def VerifyBatch(
        self, request: verifier_pb2.VerifyBatchRequest, context: grpc.aio.ServicerContext
    ) -> verifier_pb2.VerifyBatchResponse:
        self.threads["VerifyBatch"] = threading.current_thread().name
        if request.requests and request.requests[0].request_id == "slow":
            time.sleep(0.5)  # on a pool thread: the loop goes on
        return verifier_pb2.VerifyBatchResponse(responses=[self._answer(r, "VerifyBatch") for r in request.requests])

    async def VerifyStream(
        self, request_iterator: AsyncIterator[verifier_pb2.VerifyRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[verifier_pb2.VerifyResponse]:
        async for request in request_iterator:
            await asyncio.sleep(0.001)  # let the other stream's calls interleave with this one
            yield self._answer(request, "VerifyStream")


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    opened = Deployment.open(Settings(), f"sqlite:///{tmp_path}/guard.db")
    for merchant in ("pharmacy-a", "pharmacy-b"):
        opened.admin.upsert_merchant(merchant, merchant, t.MERCHANT_KIND_PHARMACY, "330200", True)
    yield opened
    opened.close()


def serve_probe(deployment: Deployment, *, inline: bool, test: object) -> Probe:
    """Runs `test(target)` (a coroutine function) against the probe on a guarded aio server."""
    probe = Probe()

    async def main() -> None:
        pool = futures.ThreadPoolExecutor(2, thread_name_prefix="pool")
        server = grpc.aio.server()
        registry = GuardedRegistry(
            server, Authorizer(deployment.merchants, deployment.keys, principal_from_metadata),
            Placement(pool, inline=inline),
        )
        verifier_pb2_grpc.add_VerifierServicer_to_server(probe, registry)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            await test(f"127.0.0.1:{port}")  # type: ignore[operator]
        finally:
            await server.stop(None)
            pool.shutdown()

    asyncio.run(main())
    return probe


def as_merchant(merchant_id: str) -> tuple[tuple[str, str]]:
    return (("x-ecard-principal", f"merchant:{merchant_id}"),)


@pytest.mark.parametrize("inline", [True, False])
def test_hot_path_runs_on_the_loop_only_when_state_is_local(deployment: Deployment, inline: bool) -> None:
    async def calls(target: str) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            answer = await stub.Verify(verifier_pb2.VerifyRequest(), metadata=as_merchant("pharmacy-a"))
            assert answer.request_id == "pharmacy-a"
            batch = verifier_pb2.VerifyBatchRequest(requests=[verifier_pb2.VerifyRequest()])
            await stub.VerifyBatch(batch, metadata=as_merchant("pharmacy-a"))

    probe = serve_probe(deployment, inline=inline, test=calls)
    assert probe.threads["Verify"].startswith("MainThread" if inline else "pool")
    assert probe.threads["VerifyBatch"].startswith("pool")  # milliseconds of signatures never block the loop


def test_concurrent_streams_each_see_their_own_principal(deployment: Deployment) -> None:
    async def calls(target: str) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)

            async def stream(merchant_id: str) -> list[str]:
                requests = [verifier_pb2.VerifyRequest() for _ in range(20)]
                call = stub.VerifyStream(iter(requests), metadata=as_merchant(merchant_id))
                return [answer.request_id async for answer in call]

            a, b = await asyncio.gather(stream("pharmacy-a"), stream("pharmacy-b"))
            assert a == ["pharmacy-a"] * 20 and b == ["pharmacy-b"] * 20

    serve_probe(deployment, inline=True, test=calls)


@pytest.mark.parametrize("inline", [True, False])
def test_failures_map_to_statuses_and_a_crash_tells_the_caller_nothing(
    deployment: Deployment, inline: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def calls(target: str) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.Verify(verifier_pb2.VerifyRequest(request_id="missing"), metadata=as_merchant("pharmacy-a"))
            assert (missing.value.code(), missing.value.details()) == (grpc.StatusCode.NOT_FOUND, "no such thing")
            with pytest.raises(grpc.aio.AioRpcError) as crash:
                await stub.Verify(verifier_pb2.VerifyRequest(request_id="crash"), metadata=as_merchant("pharmacy-a"))
            assert (crash.value.code(), crash.value.details()) == (grpc.StatusCode.INTERNAL, "internal error")
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await stub.Verify(verifier_pb2.VerifyRequest(), metadata=as_merchant("pharmacy-z"))
            assert unknown.value.code() == grpc.StatusCode.PERMISSION_DENIED
            answer = await stub.Verify(verifier_pb2.VerifyRequest(), metadata=as_merchant("pharmacy-b"))
            assert answer.request_id == "pharmacy-b"  # the server lives on

    serve_probe(deployment, inline=inline, test=calls)
    crashed = [r for r in caplog.records if "rpc_crashed" in r.getMessage()]
    assert len(crashed) == 1 and "RuntimeError" in crashed[0].getMessage()
    assert "test_guard.py" in crashed[0].getMessage()  # where it failed
    assert "330206199001011234" not in caplog.text  # never what the exception said


def test_a_call_whose_caller_gives_up_is_counted_cancelled(deployment: Deployment) -> None:
    def cancelled() -> float:
        return metrics.COUNTS.totals().get(("requests", "VerifyBatch", "CANCELLED"), 0)

    before = cancelled()

    async def calls(target: str) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            slow = verifier_pb2.VerifyBatchRequest(requests=[verifier_pb2.VerifyRequest(request_id="slow")])
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await stub.VerifyBatch(slow, metadata=as_merchant("pharmacy-a"), timeout=0.1)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            answer = await stub.Verify(verifier_pb2.VerifyRequest(), metadata=as_merchant("pharmacy-a"))
            assert answer.request_id == "pharmacy-a"  # the loop was not held by the slow call
            for _ in range(50):
                if cancelled() > before:
                    break
                await asyncio.sleep(0.02)

    serve_probe(deployment, inline=True, test=calls)
    assert cancelled() == before + 1


def test_a_batch_is_counted_on_the_wire_stopping_past_its_limit() -> None:
    from ecard.v1 import verifier_pb2
    from ecard_server.rpc.parsing import MessageLimits, fields_at_most

    batch = verifier_pb2.VerifyBatchRequest(requests=[verifier_pb2.VerifyRequest(token="EC1:" + "A" * 200)] * 3)
    data = batch.SerializeToString()
    assert fields_at_most(data, 3) and not fields_at_most(data, 2)
    assert not fields_at_most(b"\x0a\x00" * 10**6, 1000)  # stops at the 1,001st
    assert fields_at_most(b"\x0a\xff\xff", 5)  # a length past the end: left to the parser
    limits = MessageLimits(max_batch=1000)
    assert limits.of("/ecard.v1.Verifier/Verify") == 2048
    assert limits.largest == limits.of("/ecard.v1.Verifier/VerifyBatch") >= 1000 * 2048
