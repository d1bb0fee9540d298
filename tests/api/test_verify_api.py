"""Verifier, Cards and Admin through the public gRPC API: a real `ecard serve` process, the real SDK."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ecard import (
    AdminClient,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TokenSigner,
    card_ref,
    generate_private_key,
    physical_cards,
    public_key_pem,
    verify_request,
)
from ecard.testing import World
from ecard.v1 import admin_pb2, verifier_pb2, verifier_pb2_grpc
from ecard.v1 import types_pb2 as t
from tests.helpers.inprocess import InProcessServer

Verify = Callable[..., Any]


@pytest.fixture
def verify(pos_client: Any) -> Verify:
    """Verify through the sync client, then through the asyncio client (api/conftest.py: pos_client)."""
    return pos_client.verify


def test_first_verify_is_accepted_then_replayed(world: World, verify: Verify) -> None:
    token = world.mint(0)
    first = verify(token, purpose=t.PURPOSE_MEDICAL_SETTLEMENT, min_assurance=t.ASSURANCE_PIN, request_id="r-1")
    assert (first.verdict, first.reason, first.request_id) == (t.VERDICT_ACCEPTED, t.REASON_OK, "r-1")
    assert first.verification_id and first.verification_expires_at.seconds > time.time() + 200
    assert first.card.ecard_id == world.ecard_ids[0]
    assert first.card.holder_name_masked == world.cards[0][1][0] + "*" * (len(world.cards[0][1]) - 1)
    assert first.card.status == t.CARD_STATUS_ACTIVE
    again = verify(token, purpose=t.PURPOSE_IDENTITY)
    assert (again.verdict, again.reason, again.verification_id) == (t.VERDICT_REJECTED, t.REASON_REPLAYED, "")


def test_every_rejection_reason_over_the_api(world: World, verify: Verify) -> None:
    now = int(time.time())
    ecard = world.ecard_ids[0]
    with world.admin() as admin:
        admin.upsert_issuer(f"{world.issuer_id}-x", "unbound channel")
        stranger_key = generate_private_key()
        stranger = admin.register_key(f"{world.issuer_id}-x", public_key_pem(stranger_key))
        later_key = generate_private_key()
        later = admin.register_key(world.issuer_id, public_key_pem(later_key), not_before=now + 3600)
    good = world.mint(0)
    cases = {
        t.REASON_MALFORMED: "EC1:NOT A TOKEN",
        t.REASON_UNSUPPORTED_VERSION: "EC9:" + good[4:],
        t.REASON_UNKNOWN_ISSUER: TokenSigner(world.key, issuer_id="nobody-at-all").mint(ecard),
        t.REASON_UNKNOWN_KEY: TokenSigner(world.key, issuer_id=world.issuer_id, kid="nokey").mint(ecard),
        t.REASON_KEY_INACTIVE: TokenSigner(later_key, issuer_id=world.issuer_id, kid=later.kid).mint(ecard),
        t.REASON_NOT_YET_VALID: world.mint(0, issued_at=now + 120),
        t.REASON_EXPIRED: world.mint(0, issued_at=now - 200),
        t.REASON_LIFETIME_TOO_LONG: world.mint(0, ttl_seconds=3600),
        t.REASON_BAD_SIGNATURE: TokenSigner(generate_private_key(), issuer_id=world.issuer_id, kid=world.signer.kid)
        .mint(ecard),
        t.REASON_CARD_UNKNOWN: world.signer.mint("ENOSUCHCARD00000"),
        t.REASON_CHANNEL_NOT_BOUND: TokenSigner(stranger_key, issuer_id=f"{world.issuer_id}-x", kid=stranger.kid)
        .mint(ecard),
        t.REASON_PURPOSE_NOT_ALLOWED: world.mint(0, purposes=[t.PURPOSE_PAYMENT]),
        t.REASON_ASSURANCE_TOO_LOW: world.mint(0, assurance=t.ASSURANCE_NONE),
    }
    for reason, token in cases.items():
        answer = verify(token, purpose=t.PURPOSE_IDENTITY, min_assurance=t.ASSURANCE_PIN)
        assert (answer.verdict, t.Reason.Name(answer.reason)) == (t.VERDICT_REJECTED, t.Reason.Name(reason))
    with world.admin() as admin:
        admin.revoke_key(world.issuer_id, world.signer.kid)
    assert verify(world.mint(0), purpose=t.PURPOSE_IDENTITY).reason == t.REASON_KEY_REVOKED  # without restart


def test_card_lifecycle_lost_reinstated_cancelled(world: World, verify: Verify) -> None:
    card_no = world.cards[1][0]
    with world.admin() as admin:
        assert admin.report_lost(card_no=card_no).status == t.CARD_STATUS_LOST
        assert verify(world.mint(1), purpose=t.PURPOSE_IDENTITY).reason == t.REASON_CARD_LOST
        assert admin.reinstate(card_no=card_no).status == t.CARD_STATUS_ACTIVE
        assert verify(world.mint(1), purpose=t.PURPOSE_IDENTITY).reason == t.REASON_OK
        assert admin.cancel(ecard_id=world.ecard_ids[1]).status == t.CARD_STATUS_CANCELLED
        assert verify(world.mint(1), purpose=t.PURPOSE_IDENTITY).reason == t.REASON_CARD_CANCELLED
        with pytest.raises(FailedPrecondition) as caught:
            admin.reinstate(card_no=card_no)
        assert caught.value.reason == "CARD_CANCELLED"


def test_channel_reports_its_own_card_lost_but_no_other(world: World) -> None:
    other = World.seed(world.target, cards=1)
    with world.channel() as channel:
        assert channel.report_lost(ecard_id=world.ecard_ids[2]).status == t.CARD_STATUS_LOST
        assert channel.get_ecard(world.ecard_ids[2]).channels == [world.issuer_id]
        with pytest.raises(PermissionDenied):
            channel.report_lost(ecard_id=other.ecard_ids[0])
        with pytest.raises(PermissionDenied):
            channel.get_ecard(other.ecard_ids[0])


def test_second_issuance_through_another_channel_returns_the_same_ecard(world: World) -> None:
    card_no, name, id_number = world.cards[0]
    second = f"{world.issuer_id}-2"
    key = generate_private_key()
    with world.admin() as admin:
        admin.upsert_issuer(second, "second channel")
        kid = admin.register_key(second, public_key_pem(key)).kid
    signer = TokenSigner(key, issuer_id=second, kid=kid)
    with world.pharmacy() as pos:
        assert pos.verify(signer.mint(world.ecard_ids[0])).reason == t.REASON_CHANNEL_NOT_BOUND
        with world.channel(second, signer) as channel:
            card = channel.issue_ecard(card_no, name, id_number, assurance=t.ASSURANCE_FACE)
        assert card.ecard_id == world.ecard_ids[0]
        assert sorted(card.channels) == sorted([world.issuer_id, second])
        assert pos.verify(signer.mint(world.ecard_ids[0])).reason == t.REASON_OK
    with world.channel() as channel:  # the first channel again: same e-card, nothing new
        assert channel.issue_ecard(card_no, name, id_number, assurance=t.ASSURANCE_FACE).ecard_id == world.ecard_ids[0]


def test_issuance_needs_matching_identity_face_check_and_enrollment(world: World) -> None:
    card_no, name, id_number = world.cards[0]
    with world.channel() as channel:
        for args in ((card_no, name, "330203199001019999"), (card_no, "别人", id_number)):
            with pytest.raises(FailedPrecondition) as caught:
                channel.issue_ecard(*args, assurance=t.ASSURANCE_FACE)
            assert caught.value.reason == "IDENTITY_MISMATCH" and "id_number" not in caught.value.message
            caught_mismatch = caught.value
        with pytest.raises(FailedPrecondition) as caught:
            channel.issue_ecard(card_no, name, id_number, assurance=t.ASSURANCE_PIN)
        assert caught.value.reason == "ASSURANCE_TOO_LOW"
        with pytest.raises(FailedPrecondition) as unknown:  # answered as a mismatch: no oracle of numbers
            channel.issue_ecard("Z99999999", name, id_number, assurance=t.ASSURANCE_FACE)
        assert (unknown.value.reason, unknown.value.message) == (caught_mismatch.reason, caught_mismatch.message)
        with pytest.raises(InvalidArgument):
            channel.issue_ecard("", name, id_number, assurance=t.ASSURANCE_FACE)


def _raw_verify(target: str, principal: str | None, request: verifier_pb2.VerifyRequest) -> grpc.RpcError:
    with grpc.insecure_channel(target) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        metadata = (("x-ecard-principal", principal),) if principal else ()
        with pytest.raises(grpc.RpcError) as caught:
            stub.Verify(request, metadata=metadata, timeout=5)
    return caught.value


def test_role_table(world: World) -> None:
    request = verify_request(world.mint(0), purpose=t.PURPOSE_IDENTITY)
    assert _raw_verify(world.target, None, request).code() == grpc.StatusCode.UNAUTHENTICATED
    assert _raw_verify(world.target, "somebody", request).code() == grpc.StatusCode.UNAUTHENTICATED
    assert _raw_verify(world.target, f"channel:{world.issuer_id}", request).code() == grpc.StatusCode.PERMISSION_DENIED
    assert _raw_verify(world.target, "admin", request).code() == grpc.StatusCode.PERMISSION_DENIED
    assert _raw_verify(world.target, "merchant:unknown", request).code() == grpc.StatusCode.PERMISSION_DENIED
    with world.admin() as admin:
        admin.upsert_merchant("undesignated-1", kind=t.MERCHANT_KIND_PHARMACY, designated=False)
    assert _raw_verify(world.target, "merchant:undesignated-1", request).code() == grpc.StatusCode.PERMISSION_DENIED
    with world.pharmacy() as pos:
        with pytest.raises(PermissionDenied):  # naming another merchant
            pos._call(pos._verifier.Verify, verifier_pb2.VerifyRequest(
                token=world.mint(0), purpose=t.PURPOSE_IDENTITY, merchant_id=world.hospital_id))
        # the same token was not consumed by any refused call
        assert pos.verify(request.token, purpose=t.PURPOSE_IDENTITY).reason == t.REASON_OK
    with pytest.raises(PermissionDenied) as caught, world.pharmacy() as pos:
        pos._call(AdminClient(world.target)._admin.UpsertIssuer, admin_pb2.Issuer(issuer_id="evil"))
    assert caught.value.reason == "ROLE_NOT_ALLOWED"
    with pytest.raises(PermissionDenied), world.channel() as channel:  # only the operator cancels
        channel._call(channel._cards.Cancel, card_ref(ecard_id=world.ecard_ids[0]))


def test_bad_requests_are_invalid_argument_and_consume_nothing(world: World) -> None:
    token = world.mint(0)
    with world.pharmacy() as pos:
        with pytest.raises(InvalidArgument):
            pos.verify("", purpose=t.PURPOSE_IDENTITY)
        with pytest.raises(InvalidArgument) as caught:
            pos.verify(token, purpose=t.PURPOSE_UNSPECIFIED)
        assert caught.value.reason == "MISSING_PURPOSE"
        with pytest.raises(InvalidArgument):
            pos.verify("EC1:" + "A" * 5000, purpose=t.PURPOSE_IDENTITY)
        assert pos.verify(token, purpose=t.PURPOSE_IDENTITY).reason == t.REASON_OK


def test_stream_and_batch_share_the_unary_checks(world: World) -> None:
    tokens = [world.mint(i % 3) for i in range(6)]
    requests = [verify_request(tok, purpose=t.PURPOSE_IDENTITY, request_id=f"s{i}") for i, tok in enumerate(tokens)]
    requests.append(verify_request(tokens[0], purpose=t.PURPOSE_IDENTITY, request_id="dup"))
    requests.append(verifier_pb2.VerifyRequest(token=tokens[1], request_id="nopurpose"))
    with world.pharmacy() as pos:
        answers = {a.request_id: a for a in pos.verify_stream(iter(requests))}
        assert {k: t.Reason.Name(v.reason) for k, v in answers.items()} == {
            **{f"s{i}": "REASON_OK" for i in range(6)}, "dup": "REASON_REPLAYED", "nopurpose": "REASON_MALFORMED",
        }
        fresh = [world.mint(i % 3) for i in range(5)]
        batch = [verify_request(tok, purpose=t.PURPOSE_IDENTITY, request_id=f"b{i}") for i, tok in enumerate(fresh)]
        batch.insert(2, verify_request(tokens[3], purpose=t.PURPOSE_IDENTITY, request_id="old"))
        out = pos.verify_batch(batch)
        assert [a.request_id for a in out] == [r.request_id for r in batch]
        assert [a.reason for a in out] == [t.REASON_OK] * 2 + [t.REASON_REPLAYED] + [t.REASON_OK] * 3
        with pytest.raises(InvalidArgument) as too_many:
            pos.verify_batch([verify_request(tokens[0], purpose=t.PURPOSE_IDENTITY)] * 1001)
        assert too_many.value.reason == "BATCH_TOO_LARGE"


def test_enrollment_counts_rows_and_never_touches_a_balance(world: World) -> None:
    card_no, name, id_number = world.cards[0]
    rows = [
        (card_no, name, id_number, "330201", 999_999),  # known: updated, balance kept
        ("N" + card_no[1:], "新人", "330203199901010000", "330200", 500),
        ("bad no!", "x", "330203199901010000", "330200", 0),
        ("N2" + card_no[2:], "", "330203199901010000", "330200", 0),
        ("N3" + card_no[2:], "负数", "330203199901010000", "330200", -1),
    ]
    with world.admin() as admin:
        summary = admin.enroll_cards(physical_cards(rows))
        assert (summary.enrolled, summary.updated, summary.rejected) == (1, 1, 3)
        assert [e.split(":")[0] for e in summary.errors] == ["row 3", "row 4", "row 5"]
        card = admin.get_ecard(world.ecard_ids[0])
        assert card.personal_account_balance_fen == 100_000 and card.region == "330201"
        credited = admin.credit_account(card_no, 250, "credit-1")
        assert admin.credit_account(card_no, 250, "credit-1").personal_account_balance_fen == 100_250
        assert credited.personal_account_balance_fen == 100_250
        with pytest.raises(AlreadyExists) as caught:
            admin.credit_account(card_no, 300, "credit-1")
        assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
        with pytest.raises(NotFound):
            admin.credit_account("Z00000000", 1, "credit-2")
        with pytest.raises(InvalidArgument):
            admin.credit_account(card_no, -5, "credit-3")


def test_key_registration_checks(world: World) -> None:
    with world.admin() as admin:
        with pytest.raises(InvalidArgument):
            admin._call(admin._admin.RegisterIssuerKey, admin_pb2.IssuerKey(
                issuer_id=world.issuer_id, kid="k1", algorithm=t.KEY_ALGORITHM_ECDSA_P256,
                public_key_pem=public_key_pem(world.key)))  # an Ed25519 key declared as P-256
        with pytest.raises(FailedPrecondition):
            admin.register_key("no-such-issuer", public_key_pem(generate_private_key()))
        with pytest.raises(AlreadyExists):
            admin.register_key(world.issuer_id, public_key_pem(generate_private_key()), kid=world.signer.kid)
        keys = admin.list_keys(world.issuer_id)
        assert [k.kid for k in keys] == [world.signer.kid] and not keys[0].revoked


def test_health_and_reflection(server: InProcessServer) -> None:
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "ecard.v1.Verifier"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"ecard.v1.Verifier", "ecard.v1.Cards", "ecard.v1.Admin", "grpc.health.v1.Health"} <= services


def test_errors_carry_error_info(world: World) -> None:
    with world.channel() as channel, pytest.raises(FailedPrecondition) as caught:
        channel.issue_ecard(world.cards[0][0], world.cards[0][1], "000000000000000000", assurance=t.ASSURANCE_FACE)
    exc = caught.value
    assert exc.reason == "IDENTITY_MISMATCH"
    assert exc.grpc_code == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert isinstance(exc.__cause__, grpc.RpcError)


def test_restart_keeps_every_registration_and_consumed_nothing_new() -> None:
    with InProcessServer() as server:
        world = World.seed(server.target, cards=2)
        with world.admin() as admin:
            admin.report_lost(card_no=world.cards[1][0])
        server.restart()
        with world.pharmacy() as pos:
            assert pos.verify(world.mint(0), purpose=t.PURPOSE_IDENTITY).reason == t.REASON_OK
            assert pos.verify(world.mint(1), purpose=t.PURPOSE_IDENTITY).reason == t.REASON_CARD_LOST
        with world.admin() as admin:
            assert [k.kid for k in admin.list_keys(world.issuer_id)] == [world.signer.kid]
