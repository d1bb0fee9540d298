"""Verify's calls run on a few threads of their own (rpc.threaded.HotPool), each reading its request
message after authorization: an authorized caller whose calls never send that message holds those
threads, and the others' Verify must still be answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc

from ecard import Purpose, Reason
from ecard.testing import World
from ecard.v1 import verifier_pb2
from tests.helpers.inprocess import InProcessServer

HELD = 24  # past the hot pool's HOT_THREADS, and past what it doubles to in its first steps


def _never_sent(release: threading.Event) -> Iterator[bytes]:
    release.wait(60)
    return
    yield b""  # a generator that sends nothing: the call's headers go, its message never does


def test_calls_that_never_send_their_request_do_not_stall_verify(server: InProcessServer, world: World) -> None:
    release = threading.Event()
    principal = (("x-ecard-principal", f"merchant:{world.pharmacy_id}"),)
    with grpc.insecure_channel(server.target) as channel:
        unsent = channel.stream_unary("/ecard.v1.Verifier/Verify", request_serializer=lambda data: data,
                                      response_deserializer=verifier_pb2.VerifyResponse.FromString)
        held = [unsent.future(_never_sent(release), metadata=principal, timeout=60) for _ in range(HELD)]
        try:
            time.sleep(0.5)  # every held call is on a thread, waiting for its message
            with world.pharmacy() as pos:
                began = time.monotonic()
                for n in range(5):
                    assert pos.verify(world.mint(n % 3), purpose=Purpose.IDENTITY).reason == Reason.OK
                assert time.monotonic() - began < 10
        finally:
            release.set()
        for call in held:  # no message came: refused, not parsed
            assert call.exception(timeout=30).code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[union-attr]
