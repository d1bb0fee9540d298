"""One JSON line per call in the server's log, its request id sent back as `x-request-id`; Verify sampled."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import grpc
import pytest

from ecard import line_item, verify_request
from ecard.testing import EcardServer, World
from ecard.v1 import admin_pb2, admin_pb2_grpc, settlement_pb2, settlement_pb2_grpc, verifier_pb2, verifier_pb2_grpc
from ecard.v1 import types_pb2 as t

OK_PER_SECOND = 3
REFUSED_PER_SECOND = 25


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> EcardServer:
    config = tmp_path_factory.mktemp("config") / "log.toml"
    config.write_text(f"request_log_verify_ok_per_second = {OK_PER_SECOND}\n"
                      f"request_log_refused_per_second = {REFUSED_PER_SECOND}\n")
    with EcardServer(extra_args=["--config", str(config)]) as server:
        yield server


def rpc_lines(server: EcardServer) -> list[dict]:
    lines = []
    for line in server.logs().splitlines():
        entry = json.loads(line)
        if entry.get("event") == "rpc":
            lines.append(entry)
    return lines


def trailing_id(metadata: tuple) -> str:
    return dict(metadata)["x-request-id"]


def test_each_call_has_a_line_and_its_request_id_comes_back(logged: EcardServer) -> None:
    world = World.seed(logged.target, cards=1)
    principal = (("x-ecard-principal", f"merchant:{world.pharmacy_id}"),)
    with grpc.insecure_channel(logged.target) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        token = world.mint(0, purposes=[t.PURPOSE_MEDICAL_SETTLEMENT], assurance=t.ASSURANCE_PIN)
        request = verifier_pb2.VerifyRequest(token=token, purpose=t.PURPOSE_MEDICAL_SETTLEMENT,
                                             min_assurance=t.ASSURANCE_PIN)
        accepted, call = stub.Verify.with_call(request, metadata=(*principal, ("x-request-id", "till-7-0001")))
        assert trailing_id(call.trailing_metadata()) == "till-7-0001"  # the caller's id, echoed
        replayed, call = stub.Verify.with_call(request, metadata=principal)
        assert replayed.reason == t.REASON_REPLAYED
        made = trailing_id(call.trailing_metadata())  # none sent: the server made one
        assert made and made != "till-7-0001"
        with pytest.raises(grpc.RpcError) as refused:
            stub.Verify(request, metadata=(("x-ecard-principal", "channel:nobody"), ("x-request-id", "till-7-0002")))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert trailing_id(refused.value.trailing_metadata()) == "till-7-0002"  # on errors too
    with world.pharmacy() as pos:  # Settle runs on the pool: its line still names the principal
        pos.settle([line_item("XA01", "amoxicillin", t.DRUG_CLASS_A, 1280)], idempotency_key=uuid.uuid4().hex,
                   verification_id=accepted.verification_id)
    lines = rpc_lines(logged)
    by_id = {line["request_id"]: line for line in lines}
    first = by_id["till-7-0001"]
    assert (first["method"], first["code"], first["reason"], first["principal"]) == \
        ("Verify", "OK", "OK", f"merchant:{world.pharmacy_id}")
    assert 0 < first["ms"] < 10_000 and isinstance(first["pid"], int)
    assert (by_id[made]["code"], by_id[made]["reason"]) == ("OK", "REPLAYED")
    denied = by_id["till-7-0002"]
    assert (denied["code"], denied["reason"]) == ("PERMISSION_DENIED", "ROLE_NOT_ALLOWED")
    assert denied["principal"] == "unknown"  # a channel nobody registered: its claim is not echoed
    settles = [line for line in lines if line["method"] == "Settle"]
    assert settles and settles[-1]["principal"] == f"merchant:{world.pharmacy_id}" and settles[-1]["code"] == "OK"
    assert len({line["request_id"] for line in lines}) == len(lines)  # one line per call, ids unique


IDENTITY_NUMBER = "11010519491231002X"  # what a confused integrator might send as its principal


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> EcardServer:
    """A server whose callers may make 5 calls a second, 30 at once (seeding fits in that)."""
    config = tmp_path_factory.mktemp("config") / "limited.toml"
    config.write_text("principal_calls_per_s = 5\nprincipal_burst = 30\n")
    with EcardServer(extra_args=["--config", str(config)]) as server:
        yield server


def test_every_refusal_names_its_caller(logged: EcardServer, limited: EcardServer) -> None:
    """Each kind of refusal, by raw stubs with chosen metadata; each log line (found by its request id)
    names the caller's principal when the server knows it, `none` when it sent none, and `unknown` for
    what it cannot vouch for. The identity number sent as a principal is in no line."""
    world = World.seed(logged.target, cards=1)
    merchant = f"merchant:{world.pharmacy_id}"
    tag = uuid.uuid4().hex[:8]
    expected: dict[str, tuple[str, str, str]] = {}  # request id -> (code, reason, principal)

    def refused(call, request, principal: str | None, name: str, code: str, reason: str, logged_as: str) -> None:
        metadata = [("x-request-id", f"{tag}-{name}")]
        if principal is not None:
            metadata.append(("x-ecard-principal", principal))
        with pytest.raises(grpc.RpcError) as error:
            call(request, metadata=metadata, timeout=10)
        assert error.value.code().name == code, (name, error.value.details())
        expected[f"{tag}-{name}"] = (code, reason, logged_as)

    token = world.mint(0)
    verify = verifier_pb2.VerifyRequest(token=token, purpose=t.PURPOSE_IDENTITY)
    with grpc.insecure_channel(logged.target) as channel:
        verifier = verifier_pb2_grpc.VerifierStub(channel)
        admin = admin_pb2_grpc.AdminStub(channel)
        settlement = settlement_pb2_grpc.SettlementStub(channel)
        refused(verifier.Verify, verify, None, "anonymous", "UNAUTHENTICATED", "NO_PRINCIPAL", "none")
        refused(verifier.Verify, verify, IDENTITY_NUMBER, "unreadable", "UNAUTHENTICATED", "BAD_PRINCIPAL", "unknown")
        refused(verifier.Verify, verify, f"merchant:{IDENTITY_NUMBER}", "stranger", "PERMISSION_DENIED",
                "MERCHANT_NOT_DESIGNATED", "unknown")
        refused(admin.UpsertIssuer, admin_pb2.Issuer(issuer_id="x", display_name="x"), merchant, "role",
                "PERMISSION_DENIED", "ROLE_NOT_ALLOWED", merchant)
        refused(verifier.Verify, verifier_pb2.VerifyRequest(token=token, merchant_id="someone-else"), merchant,
                "mismatch", "PERMISSION_DENIED", "PRINCIPAL_MISMATCH", merchant)
        refused(verifier.Verify, verifier_pb2.VerifyRequest(token="EC1:" + "A" * 4000), merchant, "too-large",
                "INVALID_ARGUMENT", "REQUEST_TOO_LARGE", merchant)
        refused(settlement.Settle, settlement_pb2.SettleRequest(verification_id="v"), merchant, "no-key",
                "INVALID_ARGUMENT", "MISSING_IDEMPOTENCY_KEY", merchant)
        assert verifier.Verify(verify, metadata=[("x-ecard-principal", merchant)]).reason == t.REASON_OK
        replayed = verifier.Verify(verify, metadata=[("x-ecard-principal", merchant),
                                                     ("x-request-id", f"{tag}-replay")])
        assert replayed.reason == t.REASON_REPLAYED
        expected[f"{tag}-replay"] = ("OK", "REPLAYED", merchant)

    busy = World.seed(limited.target, cards=1)
    busy_merchant = f"merchant:{busy.pharmacy_id}"
    batch = verifier_pb2.VerifyBatchRequest(requests=[verify_request(busy.mint(0)) for _ in range(31)])
    with grpc.insecure_channel(limited.target) as channel:
        verifier = verifier_pb2_grpc.VerifierStub(channel)
        verifier.VerifyBatch(batch, metadata=[("x-ecard-principal", busy_merchant)])  # the bucket now in debt
        refused(verifier.VerifyBatch, batch, busy_merchant, "limited", "RESOURCE_EXHAUSTED", "RATE_LIMITED",
                busy_merchant)

    lines = {line["request_id"]: line for server in (logged, limited) for line in rpc_lines(server)}
    for request_id, (code, reason, principal) in expected.items():
        line = lines[request_id]
        assert (line["code"], line["reason"], line["principal"]) == (code, reason, principal), line
    for server in (logged, limited):
        assert IDENTITY_NUMBER not in server.logs()


def test_accepted_verify_calls_are_sampled_and_rejections_are_bounded(logged: EcardServer) -> None:
    world = World.seed(logged.target, cards=1)
    principal = (("x-ecard-principal", f"merchant:{world.pharmacy_id}"),)
    tag = uuid.uuid4().hex[:8]
    calls = 60
    with grpc.insecure_channel(logged.target) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        started = time.monotonic()
        for n in range(calls):
            token = world.mint(0)
            ok = verifier_pb2.VerifyRequest(token=token, purpose=t.PURPOSE_IDENTITY)
            assert stub.Verify(ok, metadata=(*principal, ("x-request-id", f"{tag}-ok-{n}"))).reason == t.REASON_OK
            again = stub.Verify(ok, metadata=(*principal, ("x-request-id", f"{tag}-replay-{n}")))
            assert again.reason == t.REASON_REPLAYED
        seconds = time.monotonic() - started
        time.sleep(1.1)  # a fresh second: one more rejection is logged and counts the ones skipped before it
        assert stub.Verify(ok, metadata=(*principal, ("x-request-id", f"{tag}-replay-last"))).reason == \
            t.REASON_REPLAYED
    lines = [line for line in rpc_lines(logged) if line["request_id"].startswith(tag)]
    oks = [line for line in lines if line["reason"] == "OK"]
    rejected = [line for line in lines if line["reason"] == "REPLAYED"]
    seconds_spanned = int(seconds) + 2
    assert len(rejected) <= REFUSED_PER_SECOND * (seconds_spanned + 1)  # rejections: on a bounded budget
    assert len(rejected) + sum(line.get("skipped_refused", 0) for line in rejected) == calls + 1  # all counted
    assert 1 <= len(oks) <= OK_PER_SECOND * seconds_spanned, (len(oks), seconds)
    assert len(oks) < calls
    # what was not logged is counted on the next line that is
    assert sum(line["skipped_ok"] for line in oks) <= calls - len(oks)


def test_no_personal_data_in_the_log(logged: EcardServer, tmp_path: Path) -> None:
    world = World.seed(logged.target, cards=2)
    tokens = [world.mint(n) for n in range(2)]
    with world.pharmacy() as pos:
        for token in tokens:
            pos.verify(token, purpose=t.PURPOSE_IDENTITY)
            pos.verify(token, purpose=t.PURPOSE_IDENTITY)
    with world.admin() as admin:
        admin.report_lost(card_no=world.cards[1][0])
    text = logged.logs()
    assert rpc_lines(logged)
    for card_no, name, id_number in world.cards:
        for secret in (card_no, name, id_number):
            assert secret not in text
    for token in tokens:
        assert token not in text and token.split(":", 1)[1][:40] not in text
