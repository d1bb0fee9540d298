"""A POS whose Verify lost its answer asks it back by request_id (GetVerification), never verifying again.

The lost answers are real: a loopback relay between the SDK and a real server holds the server's
replies (the Verify reached the server and consumed the token) or refuses connections (it never did).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ecard import (
    AsyncPharmacyClient,
    ClientOptions,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PharmacyClient,
    RetryConfig,
    TokenNotConsumed,
    Unavailable,
    VerificationUnknown,
    line_item,
)
from ecard.testing import World
from ecard.v1 import types_pb2 as t
from ecard.v1 import verifier_pb2, verifier_pb2_grpc
from ecard_server.config import Settings
from ecard_server.storage.memory import MemoryVerificationRecords
from tests.helpers.deployment import config_file
from tests.helpers.inprocess import InProcessServer
from tests.helpers.proxy import TcpProxy

RECONNECT_FAST = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 200))
QUICK = ClientOptions(timeout=1.0, lookup_timeout=1.0, channel_options=RECONNECT_FAST)
SETTLE = {"purpose": t.PURPOSE_MEDICAL_SETTLEMENT, "min_assurance": t.ASSURANCE_PIN}


@pytest.fixture
def relay(server: InProcessServer) -> Iterator[TcpProxy]:
    """A relay to the server whose answers can be held (`hold("down")`): requests reach the server,
    its answers wait in the relay until `release()`."""
    made = TcpProxy(("127.0.0.1", server.port))
    yield made
    made.release()
    made.close()


def _later(seconds: float, action) -> threading.Timer:  # type: ignore[no-untyped-def]
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_an_answer_lost_after_the_server_consumed_is_asked_back(world: World, relay: TcpProxy) -> None:
    token = world.mint(0)
    with PharmacyClient(f"127.0.0.1:{relay.port}", merchant_id=world.pharmacy_id, options=QUICK) as pos:
        with pytest.raises(NotFound):
            pos.get_verification("warm-up")  # the connection is up before the replies are held
        relay.hold("down")
        _later(1.5, relay.release)  # past the Verify's 1 s deadline, within the lookup's
        started = time.monotonic()
        answer = pos.verify(token, **SETTLE)
        took = time.monotonic() - started
        assert took > 1.0, "the answer came back through the lookup, after the Verify's deadline"
        assert answer.verdict == t.VERDICT_ACCEPTED and answer.verification_id and answer.request_id
        assert pos.get_verification(answer.request_id) == answer
        # the recorded answer is the real one: its verification settles, once
        record = pos.settle([line_item("XA01", "amoxicillin", t.DRUG_CLASS_A, 1280)], idempotency_key=uuid.uuid4().hex,
                            verification_id=answer.verification_id)
        assert record.total_fen == 1280
        # and the token was consumed once, by that Verify
        assert pos.verify(token, **SETTLE).reason == t.REASON_REPLAYED


def test_an_answer_lost_before_the_server_is_not_consumed(world: World, relay: TcpProxy) -> None:
    token = world.mint(0)
    relay.cut()  # the Verify cannot reach the server
    _later(0.3, relay.restore)  # the lookup can
    with PharmacyClient(f"127.0.0.1:{relay.port}", merchant_id=world.pharmacy_id, options=QUICK) as pos, \
            pytest.raises(TokenNotConsumed) as caught:
        pos.verify(token, **SETTLE)
    assert "ask the holder for a new code" in str(caught.value)
    assert isinstance(caught.value.cause, Unavailable) and caught.value.request_id
    with world.pharmacy() as pos:  # not consumed indeed: the same code still verifies
        assert pos.verify(token, **SETTLE).reason == t.REASON_OK


def test_when_the_lookup_fails_too_the_outcome_is_unknown(world: World, relay: TcpProxy) -> None:
    token = world.mint(0)
    with PharmacyClient(f"127.0.0.1:{relay.port}", merchant_id=world.pharmacy_id,
                        options=ClientOptions(timeout=0.5, lookup_timeout=0.3, retry=RetryConfig(max_attempts=2),
                                              channel_options=RECONNECT_FAST)) as pos:
        with pytest.raises(NotFound):
            pos.get_verification("warm-up")
        relay.hold("down")  # never released while the SDK asks
        with pytest.raises(VerificationUnknown) as caught:
            pos.verify(token, **SETTLE)
        assert isinstance(caught.value.cause, DeadlineExceeded)
        relay.release()
        # asked again later, the answer is there: the Verify did consume the token
        assert pos.get_verification(caught.value.request_id).reason == t.REASON_OK


def test_an_answer_the_server_gave_is_not_asked_back(world: World) -> None:
    with world.pharmacy() as pos, pytest.raises(InvalidArgument):
        pos.verify("x" * 2000, **SETTLE)  # the server answered: INVALID_ARGUMENT, not a lost answer


def test_async_client_asks_back_too(world: World, relay: TcpProxy) -> None:
    async def scenario() -> None:
        async with AsyncPharmacyClient(f"127.0.0.1:{relay.port}", merchant_id=world.pharmacy_id, options=QUICK) as pos:
            with pytest.raises(NotFound):
                await pos.get_verification("warm-up")
            relay.hold("down")
            _later(1.5, relay.release)
            answer = await pos.verify(world.mint(1), **SETTLE)
            assert answer.reason == t.REASON_OK and answer.verification_id

    asyncio.run(scenario())


def test_only_the_merchant_that_verified_finds_its_answer(world: World) -> None:
    request_id = f"pos-7-{uuid.uuid4().hex}"
    with world.pharmacy() as pos:
        answer = pos.verify(world.mint(0), request_id=request_id, **SETTLE)
        assert pos.get_verification(request_id) == answer
        with pytest.raises(NotFound) as unknown:
            pos.get_verification("never-sent")
    with world.hospital() as other, pytest.raises(NotFound) as foreign:
        other.get_verification(request_id)
    assert foreign.value.reason == unknown.value.reason == "VERIFICATION_NOT_FOUND"  # no hint that it exists
    assert str(foreign.value) == str(unknown.value)


def test_only_unary_calls_with_a_request_id_are_recorded(server: InProcessServer, world: World) -> None:
    token = world.mint(0)
    metadata = (("x-ecard-principal", f"merchant:{world.pharmacy_id}"),)
    with grpc.insecure_channel(server.target) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        bare = verifier_pb2.VerifyRequest(token=token, purpose=t.PURPOSE_IDENTITY)
        assert stub.Verify(bare, metadata=metadata, timeout=5).reason == t.REASON_OK
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetVerification(verifier_pb2.GetVerificationRequest(), metadata=metadata, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        item = verifier_pb2.VerifyRequest(token=world.mint(1), purpose=t.PURPOSE_IDENTITY, request_id="in-a-batch")
        stub.VerifyBatch(verifier_pb2.VerifyBatchRequest(requests=[item]), metadata=metadata, timeout=5)
    with world.pharmacy() as pos, pytest.raises(NotFound):
        pos.get_verification("in-a-batch")


def test_memory_records_expire_and_stay_bounded() -> None:
    now = [1000.0]
    records = MemoryVerificationRecords(ttl_s=300, capacity=3, clock=lambda: now[0])
    for n in range(5):
        records.record("m", f"r{n}", b"answer %d" % n)
    assert len(records) == 3 and records.find("m", "r0") is None and records.find("m", "r4") == b"answer 4"
    assert records.find("other", "r4") is None
    now[0] += 301
    assert records.find("m", "r4") is None  # past the window: never answered
    records.record("m", "r5", b"late")
    assert len(records) <= 2  # expired records leave as new ones arrive


def test_one_merchants_records_never_push_out_anothers() -> None:
    """A merchant flooding Verify with request_ids pushes out only its own oldest records, whether it
    reaches its own bound or the bound of all merchants together."""
    now = [1000.0]
    records = MemoryVerificationRecords(ttl_s=300, capacity=7, clock=lambda: now[0], per_merchant=4)
    records.record("good", "g1", b"kept")
    for n in range(100):
        records.record("evil", f"e{n}", b"junk %d" % n)
    assert records.find("good", "g1") == b"kept"
    assert [n for n in range(100) if records.find("evil", f"e{n}")] == [96, 97, 98, 99]
    for merchant in ("m2", "m3"):  # seven in all: the next record of anyone pushes out its own oldest only
        records.record(merchant, "r", b"x")
    records.record("good", "g2", b"also kept")
    assert records.find("good", "g1") is None and records.find("good", "g2") == b"also kept"
    assert records.find("m2", "r") == records.find("m3", "r") == b"x" and len(records) == 7
    records.record("new", "n1", b"no room")  # full of others' live records: theirs stay, this is not kept
    assert records.find("new", "n1") is None and records.find("evil", "e99") == b"junk 99"
    now[0] += 301  # all expired: a full store makes room from anyone's expired records
    records.record("new", "n2", b"room now")
    assert records.find("new", "n2") == b"room now"


def test_a_rejected_verify_leaves_no_record(world: World) -> None:
    """Only accepted answers are kept: a rejected Verify consumed nothing, which is what NOT_FOUND (the
    SDK's TokenNotConsumed) says, and junk calls with request_ids cannot fill the records."""
    request_id = f"pos-9-{uuid.uuid4().hex}"
    with world.pharmacy() as pos:
        token = world.mint(0)
        assert pos.verify(token, **SETTLE).reason == t.REASON_OK
        answer = pos.verify(token, request_id=request_id, **SETTLE)
        assert answer.reason == t.REASON_REPLAYED
        with pytest.raises(NotFound):
            pos.get_verification(request_id)
        junk = pos.verify("HC1:" + "A" * 40, request_id=request_id + "-junk", **SETTLE)
        assert junk.reason != t.REASON_OK
        with pytest.raises(NotFound):
            pos.get_verification(request_id + "-junk")


@pytest.mark.postgres
@pytest.mark.redis
def test_any_replica_of_a_shared_deployment_answers(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    namespace = f"ecard-test-{uuid.uuid4().hex[:12]}"
    config = config_file(tmp_path, namespace)
    with InProcessServer(db=pg_url, redis=redis_url, settings=Settings.from_toml(config)) as a, \
            InProcessServer(db=pg_url, redis=redis_url, settings=Settings.from_toml(config)) as b:
        world = World.seed(a.target, cards=1)
        with PharmacyClient(a.target, merchant_id=world.pharmacy_id) as on_a:
            answer = on_a.verify(world.mint(0), request_id="till-3-0001", **SETTLE)
        with PharmacyClient(b.target, merchant_id=world.pharmacy_id) as on_b:
            assert on_b.get_verification("till-3-0001") == answer
        with PharmacyClient(b.target, merchant_id=world.hospital_id) as other, pytest.raises(NotFound):
            other.get_verification("till-3-0001")
    import redis

    client = redis.Redis.from_url(redis_url)
    ttl = client.ttl(f"{namespace}:verification:{{{world.pharmacy_id}}}")
    kept = client.hlen(f"{namespace}:verification:{{{world.pharmacy_id}}}")
    client.close()
    assert 290 <= ttl <= 300 and kept == 1  # kept about the verification window, then Redis forgets it
