"""The e-card token: what the QR code carries, how it is minted and how it is parsed.

Layout (docs/token.md has the bytes and test vectors):

    text      = "EC1:" + base45(SignedToken)
    SignedToken { claims: bytes = TokenClaims serialized deterministically,
                  signature: bytes = sign(key, SIGNING_CONTEXT + claims) }

The server parses with `parse_token_fields` from this very module (`parse_token` is the same parse
for SDK users), so SDK and server cannot drift apart.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from google.protobuf.message import DecodeError

from ecard._base45 import Base45Error, b45encode
from ecard._base45 import _decode as _b45decode
from ecard._keys import PrivateKey, algorithm_of, kid_for, load_private_key_pem, sign
from ecard.v1 import token_pb2, types_pb2, wire

TOKEN_VERSION = 1
TEXT_PREFIX = "EC1:"
SIGNING_CONTEXT = b"ecard/v1/token\x00"
ASSURANCE_CONTEXT = b"ecard/v1/assurance\x00"  # a channel's signed statement of a holder check
COUNTER_QR_PREFIX = "ECB1:"  # a counter binding's QR text: this prefix and the binding code
ASSURANCE_VERSION = 1
MAX_TOKEN_CHARS = 300
NONCE_BYTES = 16
SIGNATURE_BYTES = 64  # Ed25519, and ECDSA P-256 as fixed-size r || s
DEFAULT_TTL_SECONDS = 60
ALL_PURPOSES = (
    types_pb2.PURPOSE_IDENTITY,
    types_pb2.PURPOSE_MEDICAL_SETTLEMENT,
    types_pb2.PURPOSE_PAYMENT,
    types_pb2.PURPOSE_REGISTRATION,
)
_OTHER_VERSION = re.compile(r"EC[0-9]+:")


class TokenFormatError(ValueError):
    """A token text that cannot be parsed. `reason` is REASON_MALFORMED or REASON_UNSUPPORTED_VERSION."""

    def __init__(self, reason: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TokenTooLargeError(ValueError):
    """A minted token would not fit the QR budget of MAX_TOKEN_CHARS characters."""


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token whose format is valid; its signature is not checked yet."""

    claims: token_pb2.TokenClaims
    signed_bytes: bytes = field(repr=False)  # SIGNING_CONTEXT + claims bytes: what the signature covers
    signature: bytes = field(repr=False)


def _malformed(message: str) -> TokenFormatError:
    return TokenFormatError(types_pb2.REASON_MALFORMED, message)


def parse_token(text: str) -> ParsedToken:
    """Parses the QR text. Raises TokenFormatError; never checks keys, times or signatures."""
    fields = parse_token_fields(text)
    # The dataclass's own frozen __init__ costs a tenth of a parse: fill the slots directly.
    parsed = _new_parsed(ParsedToken)
    _set_claims(parsed, fields.claims)
    _set_signed_bytes(parsed, fields.signed_bytes)
    _set_signature(parsed, fields.signature)
    return parsed


class TokenFields(NamedTuple):
    """A token whose format is valid, with the claims the server checks, each read once from the
    message (its signature is not checked yet)."""

    claims: token_pb2.TokenClaims
    signed_bytes: bytes  # SIGNING_CONTEXT + claims bytes: what the signature covers
    signature: bytes
    issuer_id: str
    kid: str
    ecard_id: str
    nonce: bytes
    issued_at: int
    expires_at: int


def parse_token_fields(text: str) -> TokenFields:
    """`parse_token` for the server's hot path: the parsed token and the claims it checked, as read once
    (each read of a protobuf field makes a new Python object). Raises TokenFormatError."""
    if not text.startswith(TEXT_PREFIX):
        if _OTHER_VERSION.match(text):
            raise TokenFormatError(types_pb2.REASON_UNSUPPORTED_VERSION, "unsupported token text version")
        raise _malformed(f"token text must start with {TEXT_PREFIX}")
    if len(text) > MAX_TOKEN_CHARS:
        if text.endswith(_SCANNER_ENDS):
            return parse_token_fields(text.rstrip("\r\n"))
        raise _malformed(f"token text longer than {MAX_TOKEN_CHARS} characters")
    try:
        signed = _signed_from(_b45decode(text[_PREFIX_CHARS:]))
        claims_bytes = signed.claims
        claims = _claims_from(claims_bytes)
    except (Base45Error, DecodeError) as exc:
        # A keyboard-wedge scanner ends what it read with CR and/or LF (not base45): looked at only on
        # this path, so a clean token pays nothing for it.
        if text.endswith(_SCANNER_ENDS):
            return parse_token_fields(text.rstrip("\r\n"))
        raise _malformed(f"token is not valid base45 protobuf: {exc}") from None
    version = claims.version
    if version != TOKEN_VERSION:
        if not version:  # no version at all: not a token, not a future one
            raise _malformed("token claims carry no version")
        raise TokenFormatError(types_pb2.REASON_UNSUPPORTED_VERSION, f"token version {version}")
    issuer_id, kid, ecard_id = claims.issuer_id, claims.kid, claims.ecard_id
    if not (issuer_id and kid and ecard_id):
        raise _malformed("token lacks issuer, kid or e-card id")
    nonce = claims.nonce
    if len(nonce) != NONCE_BYTES:
        raise _malformed(f"token nonce must be {NONCE_BYTES} bytes")
    signature, issued_at, expires_at = signed.signature, claims.issued_at, claims.expires_at
    if expires_at < issued_at or len(signature) != SIGNATURE_BYTES:
        raise _malformed("token times or signature length are inconsistent")
    return _token_fields(  # tuple.__new__ directly: a third of what TokenFields(...) costs
        TokenFields,
        (claims, SIGNING_CONTEXT + claims_bytes, signature, issuer_id, kid, ecard_id, nonce, issued_at, expires_at),
    )


_PREFIX_CHARS = len(TEXT_PREFIX)
_SCANNER_ENDS = ("\r", "\n")
_token_fields = tuple.__new__
# protobuf parses any bytes-like object (its stub says bytes): the decoded bytearray is parsed uncopied
_signed_from = cast(Callable[[bytes | bytearray], token_pb2.SignedToken], token_pb2.SignedToken.FromString)
_claims_from = token_pb2.TokenClaims.FromString
_new_parsed = object.__new__
_set_claims = vars(ParsedToken)["claims"].__set__  # the slot descriptors
_set_signed_bytes = vars(ParsedToken)["signed_bytes"].__set__
_set_signature = vars(ParsedToken)["signature"].__set__


def encode_token(claims: token_pb2.TokenClaims, private_key: PrivateKey) -> str:
    """Signs the claims and returns the QR text. Raises TokenTooLargeError past MAX_TOKEN_CHARS."""
    claims_bytes = claims.SerializeToString(deterministic=True)
    signed = token_pb2.SignedToken(claims=claims_bytes, signature=sign(private_key, SIGNING_CONTEXT + claims_bytes))
    text = TEXT_PREFIX + b45encode(signed.SerializeToString(deterministic=True))
    if len(text) > MAX_TOKEN_CHARS:
        raise TokenTooLargeError(
            f"token is {len(text)} characters, over the QR budget of {MAX_TOKEN_CHARS}: shorten the ids"
        )
    return text


class TokenSigner:
    """Mints tokens for one issuer key, as a channel app does when the holder unlocks the e-card.

    >>> signer = TokenSigner.from_pem(pem_bytes, issuer_id="icbc-nb")
    >>> qr_text = signer.mint("E123", purposes=[PURPOSE_MEDICAL_SETTLEMENT], assurance=ASSURANCE_PIN)
    """

    def __init__(self, private_key: PrivateKey, *, issuer_id: str, kid: str | None = None) -> None:
        if not issuer_id:
            raise ValueError("issuer_id is required")
        self.algorithm = algorithm_of(private_key)
        self._key = private_key
        self.issuer_id = issuer_id
        self.kid = kid or kid_for(private_key)

    @classmethod
    def from_pem(cls, pem: bytes, *, issuer_id: str, kid: str | None = None) -> TokenSigner:
        return cls(load_private_key_pem(pem), issuer_id=issuer_id, kid=kid)

    def claims(
        self,
        ecard_id: str,
        *,
        purposes: Iterable[int] = ALL_PURPOSES,
        assurance: int = types_pb2.ASSURANCE_PIN,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        issued_at: int | None = None,
        nonce: bytes | None = None,
    ) -> token_pb2.TokenClaims:
        if not ecard_id:
            raise ValueError("ecard_id is required")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        now = int(time.time()) if issued_at is None else issued_at
        return token_pb2.TokenClaims(
            version=TOKEN_VERSION,
            issuer_id=self.issuer_id,
            kid=self.kid,
            ecard_id=ecard_id,
            nonce=os.urandom(NONCE_BYTES) if nonce is None else nonce,
            issued_at=now,
            expires_at=now + ttl_seconds,
            purposes=wire(list(purposes)),
            assurance=wire(assurance),
        )

    def mint(
        self, ecard_id: str, *, purposes: Iterable[int] = ALL_PURPOSES, assurance: int = types_pb2.ASSURANCE_PIN,
        ttl_seconds: int = DEFAULT_TTL_SECONDS, issued_at: int | None = None, nonce: bytes | None = None,
    ) -> str:
        """A fresh token text (new nonce). Options as for `claims`."""
        return encode_token(
            self.claims(ecard_id, purposes=purposes, assurance=assurance, ttl_seconds=ttl_seconds,
                        issued_at=issued_at, nonce=nonce),
            self._key,
        )

    def sign_claims(self, claims: token_pb2.TokenClaims) -> str:
        """Signs claims built by hand (test vectors, negative tests)."""
        return encode_token(claims, self._key)

    def attest(
        self, card_no: str, *, assurance: int = types_pb2.ASSURANCE_FACE, checked_at: int | None = None,
        nonce: bytes | None = None, binding_code: str = "",
    ) -> token_pb2.SignedAssurance:
        """The channel's signed statement that it checked the holder of `card_no` (a face check by
        default) at `checked_at` (default now), for IssueECard: attributable to this issuer's key. For a
        binding at a counter, it names the counter's `binding_code`."""
        claims = token_pb2.AssuranceClaims(
            version=ASSURANCE_VERSION, issuer_id=self.issuer_id, kid=self.kid, card_no=card_no,
            assurance=wire(assurance), checked_at=int(time.time()) if checked_at is None else checked_at,
            nonce=os.urandom(NONCE_BYTES) if nonce is None else nonce, binding_code=binding_code,
        )
        return self.sign_assurance(claims)

    def sign_assurance(self, claims: token_pb2.AssuranceClaims) -> token_pb2.SignedAssurance:
        """Signs assurance claims built by hand (negative tests)."""
        claims_bytes = claims.SerializeToString(deterministic=True)
        signature = sign(self._key, ASSURANCE_CONTEXT + claims_bytes)
        return token_pb2.SignedAssurance(claims=claims_bytes, signature=signature)
