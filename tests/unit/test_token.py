"""The token codec: base45, round trips, tampering, size budget, and the documented test vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecard import (
    ECDSA_P256,
    ED25519,
    MAX_TOKEN_CHARS,
    TokenFormatError,
    TokenSigner,
    TokenTooLargeError,
    b45decode,
    b45encode,
    generate_private_key,
    load_private_key_pem,
    load_public_key_pem,
    parse_token,
    signature_check,
)
from ecard._base45 import Base45Error
from ecard.qr import make_qr
from ecard.v1 import token_pb2, types_pb2

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0"), (b"", "")],
)
def test_base45_rfc9285_examples(raw: bytes, text: str) -> None:
    assert b45encode(raw) == text
    assert b45decode(text) == raw


@pytest.mark.parametrize("bad", ["GGW", "A", "ab", "AB\u00e9", "ZZZZ", ":::"])
def test_base45_rejects_invalid_text(bad: str) -> None:
    with pytest.raises(Base45Error):
        b45decode(bad)


def test_base45_round_trips_every_byte_value() -> None:
    data = bytes(range(256)) * 3 + b"\xff"
    assert b45decode(b45encode(data)) == data


@pytest.fixture(params=[ED25519, ECDSA_P256], ids=["ed25519", "p256"])
def signer(request: pytest.FixtureRequest) -> TokenSigner:
    return TokenSigner(generate_private_key(request.param), issuer_id="icbc-nb")


def test_round_trip_keeps_every_claim(signer: TokenSigner) -> None:
    text = signer.mint(
        "EABCDEFGHIJKLMNOP",
        purposes=[types_pb2.PURPOSE_PAYMENT],
        assurance=types_pb2.ASSURANCE_FACE,
        ttl_seconds=45,
        issued_at=1_800_000_000,
    )
    parsed = parse_token(text)
    claims = parsed.claims
    assert (claims.version, claims.issuer_id, claims.kid) == (1, "icbc-nb", signer.kid)
    assert claims.ecard_id == "EABCDEFGHIJKLMNOP"
    assert (claims.issued_at, claims.expires_at) == (1_800_000_000, 1_800_000_045)
    assert list(claims.purposes) == [types_pb2.PURPOSE_PAYMENT]
    assert claims.assurance == types_pb2.ASSURANCE_FACE
    assert len(claims.nonce) == 16
    assert signature_check(signer._key.public_key())(parsed.signature, parsed.signed_bytes)


def test_text_is_qr_alphanumeric_within_budget(signer: TokenSigner) -> None:
    text = signer.mint("E" + "A" * 16)
    assert len(text) <= MAX_TOKEN_CHARS
    assert set(text) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert make_qr(text).version <= 10


def test_fresh_nonce_per_mint(signer: TokenSigner) -> None:
    assert parse_token(signer.mint("E1")).claims.nonce != parse_token(signer.mint("E1")).claims.nonce


def test_oversize_token_is_refused_at_mint() -> None:
    signer = TokenSigner(generate_private_key(), issuer_id="a-very-long-issuer-identifier-" * 2)
    with pytest.raises(TokenTooLargeError):
        signer.mint("E" + "X" * 60)


def test_every_single_byte_tampering_is_detected(signer: TokenSigner) -> None:
    """Flip each byte of the signed token in turn: the result is unparsable or its signature fails."""
    text = signer.mint("EABCDEFGHIJKLMNOP")
    raw = b45decode(text[4:])
    check = signature_check(signer._key.public_key())
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        try:
            parsed = parse_token("EC1:" + b45encode(bytes(tampered)))
        except TokenFormatError:
            continue
        assert not check(parsed.signature, parsed.signed_bytes), f"byte {i} flipped and still valid"


def test_claims_signed_by_another_key_fail(signer: TokenSigner) -> None:
    other = TokenSigner(generate_private_key(signer.algorithm), issuer_id="icbc-nb", kid=signer.kid)
    parsed = parse_token(other.mint("E1"))
    assert not signature_check(signer._key.public_key())(parsed.signature, parsed.signed_bytes)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", types_pb2.REASON_MALFORMED),
        ("hello", types_pb2.REASON_MALFORMED),
        ("EC1:", types_pb2.REASON_MALFORMED),
        ("EC1:!!!", types_pb2.REASON_MALFORMED),
        ("EC2:ABC", types_pb2.REASON_UNSUPPORTED_VERSION),
        ("EC1:" + "A" * 400, types_pb2.REASON_MALFORMED),
    ],
)
def test_unparsable_texts_name_their_reason(text: str, reason: int) -> None:
    with pytest.raises(TokenFormatError) as caught:
        parse_token(text)
    assert caught.value.reason == reason


def _signed(claims: token_pb2.TokenClaims) -> str:
    return TokenSigner(generate_private_key(), issuer_id="x").sign_claims(claims)


def test_claims_version_other_than_one_is_unsupported() -> None:
    claims = TokenSigner(generate_private_key(), issuer_id="x").claims("E1")
    claims.version = 2
    with pytest.raises(TokenFormatError) as caught:
        parse_token(_signed(claims))
    assert caught.value.reason == types_pb2.REASON_UNSUPPORTED_VERSION


@pytest.mark.parametrize("field", ["nonce", "ecard_id", "issuer_id", "kid", "times"])
def test_claims_missing_parts_are_malformed(field: str) -> None:
    claims = TokenSigner(generate_private_key(), issuer_id="x").claims("E1")
    if field == "nonce":
        claims.nonce = b"short"
    elif field == "times":
        claims.expires_at = claims.issued_at - 1
    else:
        setattr(claims, field, "")
    with pytest.raises(TokenFormatError) as caught:
        parse_token(_signed(claims))
    assert caught.value.reason == types_pb2.REASON_MALFORMED


# -- the documented vectors ---------------------------------------------------------------------------
VECTORS = json.loads((DOCS / "token-vectors.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_documented_vector_verifies_and_is_in_the_docs(vector: dict) -> None:
    public = load_public_key_pem(vector["public_key_pem"])
    parsed = parse_token(vector["token"])
    assert signature_check(public)(parsed.signature, parsed.signed_bytes)
    assert parsed.signed_bytes.hex() == vector["signed_message_hex"]
    assert parsed.claims.SerializeToString(deterministic=True).hex() == vector["claims_hex"]
    assert parsed.claims.kid == vector["kid"]
    assert vector["token"] in (DOCS / "token.md").read_text()


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["deterministic"]], ids=lambda v: v["name"])
def test_deterministic_vector_is_reproduced_exactly(vector: dict) -> None:
    key = load_private_key_pem(vector["private_key_pem"].encode())
    c = vector["claims"]
    signer = TokenSigner(key, issuer_id=c["issuer_id"])
    claims = signer.claims(
        c["ecard_id"],
        purposes=[types_pb2.Purpose.Value(p) for p in c["purposes"]],
        assurance=types_pb2.Assurance.Value(c["assurance"]),
        ttl_seconds=c["expires_at"] - c["issued_at"],
        issued_at=c["issued_at"],
        nonce=bytes.fromhex(c["nonce_hex"]),
    )
    assert signer.kid == vector["kid"]
    assert signer.sign_claims(claims) == vector["token"]
