"""Hypothesis on the token codec: base45 and the token text, for any bytes and any text.

The server parses with the SDK's `parse_token_fields`, so these properties hold for the server too:
whatever the text, parsing gives a token or a TokenFormatError with a reason, never another exception.
"""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ecard import TokenSigner, generate_private_key
from ecard._base45 import ALPHABET, Base45Error, b45encode
from ecard._base45 import _decode as b45decode
from ecard._keys import signature_check
from ecard._token import (
    MAX_TOKEN_CHARS,
    SIGNING_CONTEXT,
    TEXT_PREFIX,
    TokenFormatError,
    TokenTooLargeError,
    parse_token_fields,
)
from ecard.v1 import token_pb2
from ecard.v1 import types_pb2 as t

KEY = generate_private_key()
SIGNER = TokenSigner(KEY, issuer_id="prop-bank")
CHECK = signature_check(KEY.public_key())
FORMAT_REASONS = {t.REASON_MALFORMED, t.REASON_UNSUPPORTED_VERSION}
ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
              min_size=1, max_size=24)


@settings(max_examples=1000)
@given(st.binary(max_size=400))
def test_base45_round_trips_any_bytes(data: bytes) -> None:
    text = b45encode(data)
    assert set(text) <= set(ALPHABET) and len(text) == 3 * (len(data) // 2) + 2 * (len(data) % 2)
    assert b45decode(text) == data


@settings(max_examples=1500)
@given(st.text(alphabet=ALPHABET, max_size=300))
def test_base45_decodes_or_says_why(text: str) -> None:
    try:
        data = b45decode(text)
    except Base45Error:
        return
    assert b45encode(data) == text  # no two texts decode to the same bytes


@settings(max_examples=3000)
@given(st.one_of(st.text(max_size=400), st.text(alphabet=ALPHABET, max_size=320).map(TEXT_PREFIX.__add__),
                 st.binary(max_size=220).map(lambda b: TEXT_PREFIX + b45encode(b))))
def test_parse_gives_a_token_or_a_reason(text: str) -> None:
    try:
        fields = parse_token_fields(text)
    except TokenFormatError as exc:
        assert exc.reason in FORMAT_REASONS
        return
    claims, signature = fields[0], fields[2]
    assert claims.version == 1 and len(signature) == 64 and len(fields[6]) == 16 and fields[7] <= fields[8]


@settings(max_examples=300, deadline=None)
@given(ecard_id=ids, purposes=st.lists(st.sampled_from(list(t.Purpose.values())[1:]), max_size=4),
       assurance=st.sampled_from(list(t.Assurance.values())), ttl=st.integers(1, 10**6),
       issued_at=st.integers(0, 2**40))
def test_minted_claims_round_trip_and_verify(ecard_id: str, purposes: list[int], assurance: int, ttl: int,
                                             issued_at: int) -> None:
    try:
        text = SIGNER.mint(ecard_id, purposes=purposes, assurance=assurance, ttl_seconds=ttl, issued_at=issued_at)
    except TokenTooLargeError:
        assume(False)
    assert len(text) <= MAX_TOKEN_CHARS
    claims, signed_bytes, signature, issuer_id, kid, parsed_id, _, start, end = parse_token_fields(text)
    assert (issuer_id, kid, parsed_id, start, end) == ("prop-bank", SIGNER.kid, ecard_id, issued_at, issued_at + ttl)
    assert list(claims.purposes) == purposes and claims.assurance == assurance
    assert CHECK(signature, signed_bytes)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_any_change_to_the_signed_bytes_breaks_the_signature(data: st.DataObject) -> None:
    text = SIGNER.mint("E-prop")
    envelope = bytearray(b45decode(text[len(TEXT_PREFIX):]))
    at = data.draw(st.integers(0, len(envelope) - 1))
    envelope[at] ^= data.draw(st.integers(1, 255))
    try:
        signed_bytes, signature = parse_token_fields(TEXT_PREFIX + b45encode(bytes(envelope)))[1:3]
    except TokenFormatError:
        return
    original = token_pb2.SignedToken.FromString(b45decode(text[len(TEXT_PREFIX):]))
    changed = (signed_bytes, signature) != (SIGNING_CONTEXT + original.claims, original.signature)
    assert changed and not CHECK(signature, signed_bytes)

