"""Domain records. Plain data; the storage backends build them and the services read them."""

from __future__ import annotations

from dataclasses import dataclass

from ecard.v1 import types_pb2

ACTIVE = types_pb2.CARD_STATUS_ACTIVE
LOST = types_pb2.CARD_STATUS_LOST
CANCELLED = types_pb2.CARD_STATUS_CANCELLED
# Merchant kinds by the name the settings file and the command line use for them.
MERCHANT_KINDS: dict[str, int] = {
    "pharmacy": types_pb2.MERCHANT_KIND_PHARMACY,
    "hospital": types_pb2.MERCHANT_KIND_HOSPITAL,
}
# The ErrorInfo reason for a card that is not active, by its status.
NOT_ACTIVE_REASON: dict[int, str] = {LOST: "CARD_LOST", CANCELLED: "CARD_CANCELLED"}


@dataclass(frozen=True, slots=True)
class Issuer:
    issuer_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class IssuerKey:
    issuer_id: str
    kid: str
    algorithm: int
    public_key_pem: str
    not_before: int | None  # unix seconds; None is open
    not_after: int | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: str
    display_name: str
    kind: int
    region: str
    designated: bool


@dataclass(frozen=True, slots=True)
class EnrollRow:
    card_no: str
    holder_name: str
    id_hash: bytes
    region: str
    opening_balance_fen: int


@dataclass(frozen=True, slots=True)
class Card:
    """A physical card with its e-card (if issued), channel bindings and account balance."""

    card_no: str
    holder_name: str
    id_hash: bytes
    region: str
    status: int
    balance_fen: int
    ecard_id: str | None
    issued_at: int | None
    channels: tuple[str, ...]
