"""Who is calling: the three kinds of principal and their wire form."""

from __future__ import annotations

from dataclasses import dataclass

from ecard.errors import InvalidArgument, PermissionDenied, Unauthenticated
from ecard_server.core.rules import validation

ADMIN = "admin"
CHANNEL = "channel"
MERCHANT = "merchant"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # ADMIN, CHANNEL or MERCHANT
    id: str = ""  # issuer_id for a channel, merchant_id for a merchant

    def __str__(self) -> str:
        return self.kind if self.kind == ADMIN else f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Principal:
        """'admin', 'channel:<issuer_id>' or 'merchant:<merchant_id>'."""
        if text == ADMIN:
            return cls(ADMIN)
        kind, _, ident = text.partition(":")
        if kind in (CHANNEL, MERCHANT) and ident and len(ident) <= 64:
            return cls(kind, ident)
        raise Unauthenticated(f"unrecognised principal {text[:80]!r}", "BAD_PRINCIPAL")

    @classmethod
    def from_uri(cls, uri: str) -> Principal:
        """The certificate form: ecard://admin, ecard://channel/<id>, ecard://merchant/<id>."""
        if not uri.startswith("ecard://"):
            raise Unauthenticated("certificate names no ecard:// principal", "BAD_PRINCIPAL")
        rest = uri[len("ecard://") :]
        return cls.parse(rest.replace("/", ":", 1))


def channel_acted_for(caller: Principal, issuer_id: str) -> str:
    """The channel a call acts for: a channel's own (an empty issuer_id is its own; another's is
    PRINCIPAL_MISMATCH), or for the operator the channel it names (required)."""
    if caller.kind == CHANNEL:
        if issuer_id and issuer_id != caller.id:
            raise PermissionDenied("a channel acts for itself only", "PRINCIPAL_MISMATCH")
        return caller.id
    if caller.kind != ADMIN:
        raise PermissionDenied("only channels and the operator may call this", "ROLE_NOT_ALLOWED")
    if not issuer_id:
        raise InvalidArgument("issuer_id is required: name the channel", "MISSING_ISSUER_ID")
    return validation.identifier(issuer_id, "issuer_id")
