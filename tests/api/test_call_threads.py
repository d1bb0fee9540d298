"""The threads that run calls (grpc's handler pool and rpc.threaded.HotPool) are SCHED_BATCH on Linux: a
thread woken for a call does not preempt the thread that holds the GIL (rpc.threaded.without_wakeup_preemption)."""

from __future__ import annotations

import os
import threading

import pytest

from ecard import Purpose, Reason
from ecard.testing import World
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2
from tests.helpers.inprocess import InProcessServer

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="scheduling policies are Linux's")


def test_every_thread_that_ran_a_call_is_sched_batch(server: InProcessServer, world: World) -> None:
    with world.pharmacy() as pos:
        for n in range(6):
            assert pos.verify(world.mint(n % 3), purpose=Purpose.IDENTITY).reason == Reason.OK
        batch = pos.verify_batch([verifier_pb2.VerifyRequest(token=world.mint(n), purpose=t.PURPOSE_IDENTITY)
                                  for n in range(3)])  # on grpc's own pool
        assert [item.reason for item in batch] == [t.REASON_OK] * 3
    call_threads = [t for t in threading.enumerate() if t.name.startswith(("ecard-call", "ecard-hot_"))]
    assert {t.name.split("_")[0] for t in call_threads} == {"ecard-call", "ecard-hot"}
    policies = {t.name: os.sched_getscheduler(t.native_id) for t in call_threads if t.native_id is not None}
    assert policies and set(policies.values()) == {os.SCHED_BATCH}, policies
    assert os.sched_getscheduler(0) != os.SCHED_BATCH  # the test's own thread, and so the server's others


def test_a_shared_deployments_verify_runs_on_the_hot_pool(served: InProcessServer) -> None:
    """On PostgreSQL + Redis too, Verify's calls run on the hot pool's few threads (each waits for its
    consumption's group commit there), not on a thread of grpc's pool each."""
    world = World.seed(served.target, cards=3)
    with world.pharmacy() as pos:
        for n in range(6):
            assert pos.verify(world.mint(n % 3), purpose=Purpose.IDENTITY).reason == Reason.OK
    hot = served._bound.hot  # type: ignore[union-attr]
    assert hot is not None and hot._threads  # type: ignore[attr-defined]
