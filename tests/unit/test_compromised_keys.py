"""A compromised channel key stays shut off (issue 17): revoked key material is refused under any kid
or issuer, a disabled issuer's keys never verify, weak Ed25519 keys are refused at registration.

The attack as reproduced: after its key was revoked, a channel registered the same public key under
a new kid and minted again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ecard import (
    ECDSA_P256,
    ED25519,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    TokenSigner,
    generate_private_key,
    public_key_pem,
)
from ecard.v1 import types_pb2 as t
from ecard_server.app import Deployment
from ecard_server.config import Settings
from ecard_server.core.admin import EnrollInput
from ecard_server.core.assurance import Statement
from ecard_server.core.principals import CHANNEL, Principal

HOLDER = ("C0000001", "朱小明", "330203199001011234")
# Ed25519 encodings of small-order points (orders 1, 2, 4 and 8, and non-canonical ones): a signature
# "by" such a key can verify for messages its holder never signed.
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


@pytest.fixture
def deployment(tmp_path) -> Iterator[Deployment]:  # type: ignore[no-untyped-def]
    deployment = Deployment.open(Settings(), f"sqlite:///{tmp_path}/ecard.db")
    deployment.admin.upsert_issuer("bank", "Bank")
    deployment.admin.upsert_issuer("other", "Other")
    deployment.admin.upsert_merchant("pharmacy-1", "pharmacy", t.MERCHANT_KIND_PHARMACY, "330200", True)
    deployment.admin.enroll_cards([EnrollInput(*HOLDER, "330200", 10_000)])
    yield deployment
    deployment.close()


def verify(deployment: Deployment, signer: TokenSigner, ecard_id: str) -> int:
    return deployment.verifier.verify_token(signer.mint(ecard_id), merchant_id="pharmacy-1",
                                            purpose=t.PURPOSE_IDENTITY, min_assurance=t.ASSURANCE_NONE).reason


def issued(deployment: Deployment, signer: TokenSigner) -> str:
    card = deployment.cards.issue_ecard(Principal(CHANNEL, signer.issuer_id), *HOLDER,
                                        Statement.of(signer.attest(HOLDER[0])))
    return card.ecard_id or ""


def compressed(key: ec.EllipticCurvePrivateKey) -> str:
    """The same P-256 public key, its point compressed: another PEM text of the same key."""
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    header = bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200")  # SPKI of a compressed point
    der = header + point
    import base64

    return "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize("algorithm", [ED25519, ECDSA_P256])
def test_a_revoked_key_is_refused_under_a_new_kid_and_by_another_issuer(deployment: Deployment, algorithm: int) -> None:
    """Sends: register K as kid k1, revoke k1, register K again as kid k2 (and as 'other''s, and a P-256
    K in compressed form). Before: each registration succeeded and K minted again. Now: KEY_REVOKED."""
    key = generate_private_key(algorithm)
    admin = deployment.admin
    kid = admin.register_key("bank", "k1", algorithm, public_key_pem(key), None, None).kid
    admin.revoke_key("bank", kid)
    texts = [public_key_pem(key)] + ([compressed(key)] if algorithm == ECDSA_P256 else [])  # type: ignore[arg-type]
    for pem in texts:
        for issuer_id, new_kid in (("bank", "k2"), ("other", "k9")):
            with pytest.raises(FailedPrecondition) as refused:
                admin.register_key(issuer_id, new_kid, algorithm, pem, None, None)
            assert refused.value.reason == "KEY_REVOKED"
    assert [k.kid for k in admin.list_keys("bank")] == ["k1"]


def test_a_live_key_is_not_registered_twice(deployment: Deployment) -> None:
    """Another kid for a live key would outlive the revocation of the first one."""
    key = generate_private_key()
    deployment.admin.register_key("bank", "k1", ED25519, public_key_pem(key), None, None)
    with pytest.raises(AlreadyExists) as taken:
        deployment.admin.register_key("other", "k1", ED25519, public_key_pem(key), None, None)
    assert taken.value.reason == "KEY_IN_USE"
    assert deployment.admin.register_key("bank", "k1", ED25519, public_key_pem(key), None, 2_000_000_000).kid == "k1"


def test_a_revoked_key_that_reached_the_store_under_another_kid_never_verifies(deployment: Deployment) -> None:
    """A row written by an older server (before registration refused it): the key cache holds it revoked."""
    key = generate_private_key()
    kid = deployment.admin.register_key("bank", "", ED25519, public_key_pem(key), None, None).kid
    signer = TokenSigner(key, issuer_id="bank", kid=kid)
    ecard_id = issued(deployment, signer)
    assert verify(deployment, signer, ecard_id) == t.REASON_OK
    deployment.admin.revoke_key("bank", kid)
    again = deployment.store.get_key("bank", kid)
    assert again is not None
    deployment.store.register_key(replace(again, kid="alias", revoked=False), 0)  # bypassing the admin checks
    deployment.admin.upsert_issuer("bank", "Bank")  # a change notice: the key cache reloads
    assert verify(deployment, TokenSigner(key, issuer_id="bank", kid="alias"), ecard_id) == t.REASON_KEY_REVOKED


@pytest.mark.parametrize("raw", SMALL_ORDER)
def test_a_small_order_ed25519_key_is_refused_at_registration(deployment: Deployment, raw: str) -> None:
    """Before: each of these loaded and was registered."""
    pem = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(InvalidArgument) as refused:
        deployment.admin.register_key("bank", "weak", ED25519, pem, None, None)
    assert refused.value.reason == "WEAK_PUBLIC_KEY"


def test_disable_issuer_revokes_every_key_at_once_and_refuses_new_ones(deployment: Deployment) -> None:
    keys = [generate_private_key(), generate_private_key(ECDSA_P256)]
    signers = []
    for key, algorithm in zip(keys, (ED25519, ECDSA_P256), strict=True):
        kid = deployment.admin.register_key("bank", "", algorithm, public_key_pem(key), None, None).kid
        signers.append(TokenSigner(key, issuer_id="bank", kid=kid))
    ecard_id = issued(deployment, signers[0])
    assert [verify(deployment, s, ecard_id) for s in signers] == [t.REASON_OK, t.REASON_OK]
    issuer = deployment.admin.disable_issuer("bank", actor="admin")
    assert issuer.disabled_at is not None
    assert [verify(deployment, s, ecard_id) for s in signers] == [t.REASON_KEY_REVOKED] * 2
    assert all(k.revoked for k in deployment.admin.list_keys("bank"))
    with pytest.raises(FailedPrecondition) as refused:
        deployment.admin.register_key("bank", "", ED25519, public_key_pem(generate_private_key()), None, None)
    assert refused.value.reason == "ISSUER_DISABLED"
    assert deployment.admin.disable_issuer("bank").disabled_at == issuer.disabled_at  # once
    events = [e for e in deployment.store.audit_events("ISSUER_DISABLED")]
    assert [(e[2], e[3], e[4]) for e in events] == [("admin", "bank", "keys_revoked=2")]
