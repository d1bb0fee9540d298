"""VerifyStream's ends: however a stream ends (finished, cancelled by its caller, refused), its call's
place among the caller's calls in flight is given back, and the next call is the caller's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from ecard import PermissionDenied, verify_request
from ecard.testing import World
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from tests.helpers.inprocess import InProcessServer


def _requests(world: World, count: int) -> Iterator[verifier_pb2.VerifyRequest]:
    for i in range(count):
        yield verify_request(world.mint(0), purpose=t.PURPOSE_IDENTITY, request_id=f"item-{i}")


def test_ended_streams_give_their_place_back(replicable: Callable[..., InProcessServer]) -> None:
    """Two calls in flight per caller: six streams cancelled after their first answer, three finished and
    one refused for a bad item would leave no place if any kept its own; then a stream and a Verify
    still run."""
    with replicable(principal_max_in_flight=2) as server:
        world = World.seed(server.target, cards=1)
        principal = (("x-ecard-principal", f"merchant:{world.pharmacy_id}"),)
        with grpc.insecure_channel(server.target) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            for _ in range(6):
                call = stub.VerifyStream(_requests(world, 50), metadata=principal)
                assert next(call).reason == t.REASON_OK
                call.cancel()
            for _ in range(3):
                answers = list(stub.VerifyStream(_requests(world, 2), metadata=principal))
                assert [a.reason for a in answers] == [t.REASON_OK, t.REASON_OK]
            oversize = verifier_pb2.VerifyRequest(token="EC1:" + "A" * 70_000, purpose=t.PURPOSE_IDENTITY)
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.VerifyStream(iter([oversize]), metadata=principal))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with world.pharmacy() as pos:
            assert [a.reason for a in pos.verify_stream(_requests(world, 3))] == [t.REASON_OK] * 3
            answer = pos.verify(world.mint(0), purpose=t.PURPOSE_IDENTITY)
            assert answer.reason == t.REASON_OK


def test_a_stream_runs_as_its_own_caller(replicable: Callable[..., InProcessServer]) -> None:
    """Streams of two merchants, one after the other on the server's threads: each answer is its own
    caller's (a merchant_id naming the other is refused, never taken from the previous call)."""
    with replicable() as server:
        world = World.seed(server.target, cards=1)
        with world.pharmacy() as pos, world.hospital() as hospital:
            for _ in range(5):
                assert [a.reason for a in pos.verify_stream(_requests(world, 2))] == [t.REASON_OK] * 2
                assert [a.reason for a in hospital.verify_stream(_requests(world, 2))] == [t.REASON_OK] * 2
            crossed = verify_request(world.mint(0), purpose=t.PURPOSE_IDENTITY)
            crossed.merchant_id = world.hospital_id
            with pytest.raises(PermissionDenied) as refused:
                list(pos.verify_stream(iter([crossed])))
            assert refused.value.reason == "PRINCIPAL_MISMATCH"
