"""The hot path's shortcuts give exactly the answers of the plain code they replace: the whole-integer
base45 decoder, the keyed BLAKE2b of verification handles, the batch verification with one nonce
call, and the per-thread metric counts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from ecard import ED25519, InvalidArgument, TokenSigner, generate_private_key, public_key_pem
from ecard._base45 import ALPHABET, Base45Error, b45decode, b45encode
from ecard.v1 import types_pb2 as t
from ecard_server.app import Deployment
from ecard_server.config import Settings
from ecard_server.core.admin import EnrollInput
from ecard_server.core.assurance import Statement
from ecard_server.core.handles import Verification, VerificationHandles
from ecard_server.core.identity import derive_key
from ecard_server.core.principals import CHANNEL, Principal
from ecard_server.core.verification import VerifyItem
from ecard_server.rpc import metrics

NOW = 1_800_000_000


def reference_b45decode(text: str) -> bytes:
    """RFC 9285, group by group."""
    values = [ALPHABET.index(ch) if ch in ALPHABET else None for ch in text]
    if None in values or len(values) % 3 == 1:
        raise Base45Error("invalid")
    out = bytearray()
    for i in range(0, len(values), 3):
        group = values[i : i + 3]
        n = sum(v * 45**k for k, v in enumerate(group))  # type: ignore[operator]
        if n > (0xFFFF if len(group) == 3 else 0xFF):
            raise Base45Error("invalid")
        out += n.to_bytes(len(group) - 1, "big")
    return bytes(out)


def test_base45_decoder_matches_the_reference_on_random_texts() -> None:
    rng = os.urandom
    for size in range(0, 40):
        for _ in range(30):
            text = "".join(ALPHABET[b % 45] for b in rng(size))
            try:
                expected: bytes | None = reference_b45decode(text)
            except Base45Error:
                expected = None
            if expected is None:
                with pytest.raises(Base45Error):
                    b45decode(text)
            else:
                assert b45decode(text) == expected, text


def test_base45_decoder_finds_a_bad_character_in_every_position() -> None:
    good = b45encode(os.urandom(31))
    for i in range(len(good)):
        for bad in ("a", "!", "~", "\x00", "\x7f", "#", "é"):
            with pytest.raises(Base45Error):
                b45decode(good[:i] + bad + good[i + 1 :])


def test_base45_round_trips_long_inputs() -> None:
    for size in (1, 2, 3, 150, 151, 2000, 5001):
        data = os.urandom(size)
        assert b45decode(b45encode(data)) == data


def test_verification_handles_are_keyed_blake2b_and_earlier_hmac_handles_still_open() -> None:
    secret = os.urandom(32)
    handles = VerificationHandles(secret)
    key = derive_key(secret, "verification")
    verification = Verification("E1234", "pharmacy-1", t.PURPOSE_PAYMENT, t.ASSURANCE_PIN, NOW, b"n" * 16)
    handle = handles.issue(verification)
    raw = base64.urlsafe_b64decode(handle[3:] + "=" * (-len(handle) % 4))
    assert raw[0] == 2 and raw[-16:] == hashlib.blake2b(raw[:-16], key=key, digest_size=16).digest()
    assert handles.open(handle, merchant_id="pharmacy-1", now=NOW) == verification
    # a handle of layout 1 (HMAC-SHA256), as issued before the upgrade
    payload = bytes([1]) + raw[1:-16]
    old = "v1." + base64.urlsafe_b64encode(payload + hmac.digest(key, payload, "sha256")[:16]).rstrip(b"=").decode()
    assert handles.open(old, merchant_id="pharmacy-1", now=NOW) == verification
    for forged in (bytes([1]) + raw[1:], bytes([3]) + raw[1:], raw[:-1] + bytes([raw[-1] ^ 1])):
        text = "v1." + base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
        with pytest.raises(InvalidArgument):
            handles.open(text, merchant_id="pharmacy-1", now=NOW)


@pytest.fixture
def deployment(tmp_path) -> Iterator[tuple[Deployment, TokenSigner, str]]:  # type: ignore[no-untyped-def]
    deployment = Deployment.open(Settings(), f"sqlite:///{tmp_path}/ecard.db", clock=lambda: float(NOW))
    admin = deployment.admin
    admin.upsert_issuer("bank", "bank")
    key = generate_private_key()
    kid = admin.register_key("bank", "", ED25519, public_key_pem(key), None, None).kid
    holder = ("C0000001", "朱小明", "330203199001011234")
    admin.enroll_cards([EnrollInput(*holder, "330200", 10_000)])
    signer = TokenSigner(key, issuer_id="bank", kid=kid)
    face = Statement.of(signer.attest(holder[0], checked_at=NOW))
    ecard_id = deployment.cards.issue_ecard(Principal(CHANNEL, "bank"), *holder, face).ecard_id
    yield deployment, signer, ecard_id or ""
    deployment.close()


def test_batch_gives_the_answers_of_one_by_one(deployment: tuple[Deployment, TokenSigner, str]) -> None:
    dep, signer, ecard_id = deployment
    good = signer.mint(ecard_id, issued_at=NOW)
    other = signer.mint(ecard_id, issued_at=NOW)
    stranger = TokenSigner(generate_private_key(), issuer_id="bank", kid=signer.kid).mint(ecard_id, issued_at=NOW)
    items: list[VerifyItem] = [
        (good, "pharmacy-1", t.PURPOSE_IDENTITY, t.ASSURANCE_NONE),
        ("EC1:garbage", "pharmacy-1", t.PURPOSE_IDENTITY, t.ASSURANCE_NONE),
        (good, "pharmacy-1", t.PURPOSE_IDENTITY, t.ASSURANCE_NONE),  # the same nonce again
        (stranger, "pharmacy-1", t.PURPOSE_IDENTITY, t.ASSURANCE_NONE),
        (other, "pharmacy-2", t.PURPOSE_PAYMENT, t.ASSURANCE_FACE),  # PIN token, FACE asked
        (other, "pharmacy-2", t.PURPOSE_PAYMENT, t.ASSURANCE_PIN),
        (signer.mint("E-unknown", issued_at=NOW), "pharmacy-1", t.PURPOSE_IDENTITY, t.ASSURANCE_NONE),
    ]
    outcomes = dep.verifier.verify_tokens(items)
    assert [o.reason for o in outcomes] == [
        t.REASON_OK, t.REASON_MALFORMED, t.REASON_REPLAYED, t.REASON_BAD_SIGNATURE, t.REASON_ASSURANCE_TOO_LOW,
        t.REASON_OK, t.REASON_CARD_UNKNOWN,
    ]
    assert outcomes[5].card is not None and outcomes[5].card.holder_name_masked == "朱**"
    opened = dep.handles.open(outcomes[5].verification_id, merchant_id="pharmacy-2", now=NOW)
    assert (opened.purpose, opened.assurance) == (t.PURPOSE_PAYMENT, t.ASSURANCE_PIN)
    assert dep.verifier.verify_tokens([]) == []
    # and one by one, after the batch, both tokens are spent
    for token in (good, other):
        assert dep.verifier.verify_token(
            token, merchant_id="pharmacy-1", purpose=t.PURPOSE_IDENTITY, min_assurance=t.ASSURANCE_NONE
        ).reason == t.REASON_REPLAYED


def test_metric_counts_from_many_threads_add_up() -> None:
    method = metrics.MethodMetrics("HotPathTestMethod")

    def work() -> None:
        for _ in range(2000):
            method.finished("OK", 0.0007)
            metrics.verdict(t.REASON_ASSURANCE_TOO_LOW)

    before = metrics.COUNTS.totals().get(("verdict", t.REASON_ASSURANCE_TOO_LOW), 0)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = generate_latest().decode()
    assert 'ecard_rpc_requests_total{code="OK",method="HotPathTestMethod"} 16000.0' in text
    assert 'ecard_rpc_latency_seconds_bucket{le="0.0005",method="HotPathTestMethod"} 0.0' in text
    assert 'ecard_rpc_latency_seconds_bucket{le="0.001",method="HotPathTestMethod"} 16000.0' in text
    assert 'ecard_rpc_latency_seconds_count{method="HotPathTestMethod"} 16000.0' in text
    assert metrics.COUNTS.totals()[("verdict", t.REASON_ASSURANCE_TOO_LOW)] == before + 16000
