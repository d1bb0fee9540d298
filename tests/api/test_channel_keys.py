"""Channel key self-service over a real `ecard serve` process, through the channel SDK.

What a channel relies on: it registers, lists, rotates and revokes its own issuer keys without the
operator, never another channel's; a rotation keeps tokens minted under the old key verifying through
the overlap window, until the window closes or the old key is revoked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from ecard import (
    ChannelClient,
    EcardError,
    InvalidArgument,
    MerchantKind,
    NotFound,
    PermissionDenied,
    Reason,
    ResourceExhausted,
    Verdict,
    from_grpc_error,
    public_key_pem,
)
from ecard.testing import World
from ecard.v1 import admin_pb2, admin_pb2_grpc
from ecard_server.config import Settings
from ecard_server.storage import open_store
from tests.helpers.channel import new_signer, verdict
from tests.helpers.inprocess import InProcessServer

DEFAULT_OVERLAP = Settings().max_token_lifetime_s + Settings().clock_skew_s


@pytest.fixture
def other(server: InProcessServer) -> World:
    """A second channel on the same server."""
    return World.seed(server.target, cards=1)


def raw_admin(world: World, principal: str, method: str, request: Any) -> EcardError:
    """An Admin call as `principal`, bypassing the SDK (which always names its own issuer); its error."""
    with grpc.insecure_channel(world.target) as channel:
        stub = admin_pb2_grpc.AdminStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            getattr(stub, method)(request, metadata=[("x-ecard-principal", principal)], timeout=10)
    return from_grpc_error(failed.value)


@pytest.fixture
def channel(world: World) -> Iterator[ChannelClient]:
    with world.channel() as client:
        yield client


def test_a_channel_registers_and_lists_its_own_keys(world: World, other: World, channel: ChannelClient) -> None:
    signer, pem = new_signer(world)
    assert verdict(world, signer) == (Verdict.REJECTED, Reason.UNKNOWN_KEY)
    key = channel.register_key(pem)
    assert (key.issuer_id, key.kid, key.revoked) == (world.issuer_id, signer.kid, False)
    assert verdict(world, signer) == (Verdict.ACCEPTED, Reason.OK)
    assert {k.kid for k in channel.list_keys()} == {world.signer.kid, signer.kid}  # keys of one second: by kid
    with other.channel() as theirs:
        assert [k.kid for k in theirs.list_keys()] == [other.signer.kid]


def test_never_another_channels_keys(world: World, other: World, channel: ChannelClient) -> None:
    me = f"channel:{world.issuer_id}"
    _, pem = new_signer(other)
    theirs = admin_pb2.IssuerKey(issuer_id=other.issuer_id, kid="k-mine", algorithm=other.signer.algorithm,
                                 public_key_pem=pem)
    for method, request in [
        ("RegisterIssuerKey", theirs),
        ("RevokeIssuerKey", admin_pb2.KeyRef(issuer_id=other.issuer_id, kid=other.signer.kid)),
        ("ListIssuerKeys", admin_pb2.ListIssuerKeysRequest(issuer_id=other.issuer_id)),
        ("RotateIssuerKey", admin_pb2.RotateIssuerKeyRequest(issuer_id=other.issuer_id,
                                                             retiring_kid=other.signer.kid, new_key=theirs)),
        # Its own issuer_id on the request, another's on the new key.
        ("RotateIssuerKey", admin_pb2.RotateIssuerKeyRequest(issuer_id=world.issuer_id,
                                                             retiring_kid=world.signer.kid, new_key=theirs)),
    ]:
        error = raw_admin(world, me, method, request)
        assert isinstance(error, PermissionDenied) and error.reason == "PRINCIPAL_MISMATCH", (method, error)
    # Another channel's kid under its own issuer is simply not one of its keys.
    with pytest.raises(NotFound):
        channel.revoke_key(other.signer.kid)
    assert verdict(other, other.signer) == (Verdict.ACCEPTED, Reason.OK)
    assert [k.kid for k in channel.list_keys()] == [world.signer.kid]


def test_the_rest_of_admin_stays_the_operators(world: World) -> None:
    me = f"channel:{world.issuer_id}"
    for method, request in [
        ("UpsertIssuer", admin_pb2.Issuer(issuer_id=world.issuer_id, display_name="mine now")),
        ("UpsertMerchant", admin_pb2.Merchant(merchant_id="m-x", kind=MerchantKind.PHARMACY, designated=True)),
        ("CreditAccount", admin_pb2.CreditRequest(card_no=world.cards[0][0], amount_fen=1, idempotency_key="k")),
    ]:
        error = raw_admin(world, me, method, request)
        assert isinstance(error, PermissionDenied) and error.reason == "ROLE_NOT_ALLOWED", (method, error)
    _, pem = new_signer(world)
    key = admin_pb2.IssuerKey(issuer_id=world.issuer_id, algorithm=world.signer.algorithm, public_key_pem=pem)
    merchant = raw_admin(world, f"merchant:{world.pharmacy_id}", "RegisterIssuerKey", key)
    assert isinstance(merchant, PermissionDenied)
    stranger = raw_admin(world, "channel:not-an-issuer", "RegisterIssuerKey", key)
    assert isinstance(stranger, PermissionDenied) and stranger.reason == "UNKNOWN_CHANNEL"


def audit(server: InProcessServer, subject_prefix: str) -> list[tuple[str, str, str]]:
    """(kind, actor, subject) of the audit rows about an issuer's keys."""
    store = open_store(server.db)
    try:
        return [(kind, actor, subject) for _, kind, actor, subject, _ in store.audit_events()
                if subject.startswith(subject_prefix)]
    finally:
        store.close()


def test_rotation_keeps_old_tokens_verifying_until_the_old_key_is_revoked(
    world: World, channel: ChannelClient, server: InProcessServer
) -> None:
    old = world.signer
    signer, pem = new_signer(world)
    before = int(time.time())
    rotated = channel.rotate_key(pem, retiring_kid=old.kid, overlap_s=3600)
    assert rotated.new_key.kid == signer.kid and not rotated.new_key.revoked
    assert rotated.retiring_key.kid == old.kid
    assert before + 3600 <= rotated.retiring_key.not_after.seconds <= int(time.time()) + 3600
    # Both keys verify through the overlap window: phones that still hold the old key keep working.
    assert verdict(world, old) == (Verdict.ACCEPTED, Reason.OK)
    assert verdict(world, signer) == (Verdict.ACCEPTED, Reason.OK)
    listed = {k.kid: k for k in channel.list_keys()}
    assert listed[old.kid].not_after == rotated.retiring_key.not_after and not listed[old.kid].revoked
    # Revoking the old key ends it at once; the new one goes on.
    assert channel.revoke_key(old.kid).revoked
    assert verdict(world, old) == (Verdict.REJECTED, Reason.KEY_REVOKED)
    assert verdict(world, signer) == (Verdict.ACCEPTED, Reason.OK)
    me = f"channel:{world.issuer_id}"
    assert audit(server, f"{world.issuer_id}/") == [
        ("KEY_REGISTERED", "admin", f"{world.issuer_id}/{old.kid}"),  # World.seed, as the operator
        ("KEY_REGISTERED", me, f"{world.issuer_id}/{signer.kid}"),
        ("KEY_RETIRING", me, f"{world.issuer_id}/{old.kid}"),
        ("KEY_REVOKED", me, f"{world.issuer_id}/{old.kid}"),
    ]


def test_the_overlap_window_closes_by_itself(world: World, channel: ChannelClient) -> None:
    old = world.signer
    signer, pem = new_signer(world)
    rotated = channel.rotate_key(pem, retiring_kid=old.kid, overlap_s=1)
    assert verdict(world, signer) == (Verdict.ACCEPTED, Reason.OK)
    # Key windows are whole seconds: the old key is valid while now <= not_after.
    time.sleep(max(0.0, rotated.retiring_key.not_after.seconds + 1.2 - time.time()))
    assert verdict(world, old) == (Verdict.REJECTED, Reason.KEY_INACTIVE)
    assert verdict(world, signer) == (Verdict.ACCEPTED, Reason.OK)


def test_rotation_defaults_and_bad_requests(world: World, channel: ChannelClient) -> None:
    _, pem = new_signer(world)
    with pytest.raises(NotFound) as unknown:  # nothing is registered when the retiring key is unknown
        channel.rotate_key(pem, retiring_kid="no-such-kid")
    assert unknown.value.reason == "UNKNOWN_KEY"
    assert [k.kid for k in channel.list_keys()] == [world.signer.kid]
    with pytest.raises(InvalidArgument) as negative:
        channel.rotate_key(pem, retiring_kid=world.signer.kid, overlap_s=-1)
    assert negative.value.reason == "INVALID_OVERLAP"
    with pytest.raises(InvalidArgument) as same:
        channel.rotate_key(public_key_pem(world.key), retiring_kid=world.signer.kid)
    assert same.value.reason == "SAME_KEY"
    # 0 (the default): the server's longest token lifetime plus its clock skew.
    before = int(time.time())
    rotated = channel.rotate_key(pem, retiring_kid=world.signer.kid)
    assert before + DEFAULT_OVERLAP <= rotated.retiring_key.not_after.seconds <= int(time.time()) + DEFAULT_OVERLAP
    assert verdict(world, world.signer) == (Verdict.ACCEPTED, Reason.OK)
    # A retiring key whose window already ends sooner keeps the sooner end.
    _, third_pem = new_signer(world)
    again = channel.rotate_key(third_pem, retiring_kid=world.signer.kid, overlap_s=10 * DEFAULT_OVERLAP)
    assert again.retiring_key.not_after == rotated.retiring_key.not_after


def test_a_channel_cannot_grow_its_keys_without_bound(world: World, channel: ChannelClient) -> None:
    """Every key is held in every process's memory: an issuer holds at most max_keys_per_issuer live ones."""
    for _ in range(Settings().max_keys_per_issuer - 1):
        channel.register_key(new_signer(world)[1])
    spare, spare_pem = new_signer(world)
    with pytest.raises(ResourceExhausted) as full:
        channel.register_key(spare_pem)
    assert full.value.reason == "TOO_MANY_KEYS"
    with pytest.raises(ResourceExhausted):
        channel.rotate_key(spare_pem, retiring_kid=world.signer.kid)
    channel.register_key(public_key_pem(world.key), not_after=int(time.time()) + 600)  # a known key's window: fine
    channel.revoke_key(world.signer.kid)  # a revoked key makes room
    assert channel.register_key(spare_pem).kid == spare.kid
    assert verdict(world, spare) == (Verdict.ACCEPTED, Reason.OK)


def test_the_operator_rotates_any_issuers_keys(world: World) -> None:
    signer, pem = new_signer(world)
    with world.admin() as admin:
        rotated = admin.rotate_key(world.issuer_id, pem, retiring_kid=world.signer.kid, overlap_s=60)
        assert rotated.new_key.issuer_id == world.issuer_id
        assert {k.kid for k in admin.list_keys(world.issuer_id)} == {world.signer.kid, signer.kid}
    assert verdict(world, signer) == (Verdict.ACCEPTED, Reason.OK)
