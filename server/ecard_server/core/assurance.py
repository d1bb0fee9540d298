"""A channel's signed statement that it checked a holder (IssueECard's `assurance_statement`).

A bare `assurance = FACE` is a claim nobody can hold the channel to. The statement is signed with one
of the channel's own registered keys (the SDK's `TokenSigner.attest`), so a binding made on it is
attributable: the store keeps the signed bytes beside the binding, and the audit trail names the key.

    claims    = AssuranceClaims { version 1, issuer_id, kid, card_no, assurance, checked_at, nonce,
                                  binding_code (a counter binding's code; else empty) }
    signature = Sign(key, "ecard/v1/assurance\\x00" || claims)

It holds only for the caller's own issuer, a key of it that is live now (not revoked, inside its
window), the card the request names, an assurance of at least FACE, and a check made at most
`issue_assurance_max_age_s` ago (and not in the future beyond the clock skew).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from ecard.errors import FailedPrecondition, InvalidArgument
from ecard.token import ASSURANCE_CONTEXT, ASSURANCE_VERSION, NONCE_BYTES
from ecard.v1 import token_pb2
from ecard.v1 import types_pb2 as t
from ecard_server.core.caches import KeyRegistry

_INVALID = "ASSURANCE_STATEMENT_INVALID"


@dataclass(frozen=True, slots=True)
class Statement:
    """The signed statement as the request carried it (both empty: none)."""

    claims: bytes = b""
    signature: bytes = b""

    @classmethod
    def of(cls, signed: token_pb2.SignedAssurance) -> Statement:
        return cls(signed.claims, signed.signature)

    @property
    def signed(self) -> bytes:
        """What the store keeps: the claims and signature, so anyone can check it again later."""
        return token_pb2.SignedAssurance(claims=self.claims, signature=self.signature).SerializeToString(
            deterministic=True
        )

    @property
    def digest(self) -> str:
        """A short name of the statement for the audit trail (SHA-256 of the signed bytes, 16 hex)."""
        return hashlib.sha256(self.signed).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Attestation:
    """A statement that held: who vouched, with which key, for what, when."""

    issuer_id: str
    kid: str
    assurance: int
    checked_at: int
    statement: Statement


def check_statement(
    statement: Statement, *, issuer_id: str, card_no: str, keys: KeyRegistry, now: int, max_age_s: int, skew_s: int,
    binding_code: str = "",
) -> Attestation:
    """The attestation of a statement by `issuer_id` about `card_no`, or FailedPrecondition
    (ASSURANCE_TOO_LOW: none, or below FACE; ASSURANCE_STATEMENT_INVALID: anything else wrong)."""
    if not statement.claims and not statement.signature:
        raise FailedPrecondition(
            "issuing needs the channel's signed statement of a face check (assurance_statement)", "ASSURANCE_TOO_LOW"
        )
    try:
        claims = token_pb2.AssuranceClaims.FromString(statement.claims)
    except DecodeError:
        raise InvalidArgument("assurance_statement claims do not parse", _INVALID) from None
    if claims.version != ASSURANCE_VERSION or len(claims.nonce) != NONCE_BYTES:
        raise InvalidArgument("assurance_statement has an unknown version or a bad nonce", _INVALID)
    if claims.issuer_id != issuer_id:
        raise FailedPrecondition("the assurance statement is another issuer's", _INVALID)
    if claims.card_no != card_no:
        raise FailedPrecondition("the assurance statement is about another card", _INVALID)
    if claims.binding_code != binding_code:  # a counter binding's check names its code, and only then
        raise FailedPrecondition("the assurance statement names another counter binding (or none)", _INVALID)
    if claims.assurance < t.ASSURANCE_FACE:
        raise FailedPrecondition("issuing an e-card needs a face check", "ASSURANCE_TOO_LOW")
    if not now - max_age_s <= claims.checked_at <= now + skew_s:
        raise FailedPrecondition(f"the face check must be at most {max_age_s} s old", _INVALID)
    entry = keys.get(issuer_id, claims.kid)
    if entry is None or entry.key.revoked:
        raise FailedPrecondition(f"key {claims.kid} of {issuer_id} is unknown or revoked", _INVALID)
    key = entry.key
    if (key.not_before is not None and now < key.not_before) or (key.not_after is not None and now > key.not_after):
        raise FailedPrecondition(f"key {claims.kid} of {issuer_id} is outside its validity window", _INVALID)
    if not entry.check(statement.signature, ASSURANCE_CONTEXT + statement.claims):
        raise FailedPrecondition("the assurance statement's signature does not verify", _INVALID)
    return Attestation(issuer_id, claims.kid, claims.assurance, claims.checked_at, statement)
