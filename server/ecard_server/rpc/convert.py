"""Domain records <-> protobuf messages."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from ecard.v1 import admin_pb2, cards_pb2, types_pb2, wire
from ecard_server.core.caches import CardSnapshot
from ecard_server.core.identity import mask_card_no, mask_name
from ecard_server.core.records import Card, IssuerKey, Merchant


def timestamp(seconds: int | None) -> Timestamp | None:
    return None if seconds is None else Timestamp(seconds=seconds)


def seconds(message: object, field: str) -> int | None:
    """A Timestamp field as unix seconds; None when unset."""
    return getattr(message, field).seconds if message.HasField(field) else None  # type: ignore[attr-defined]


def ecard(card: Card) -> cards_pb2.ECard:
    return cards_pb2.ECard(
        ecard_id=card.ecard_id or "",
        card_no_masked=mask_card_no(card.card_no),
        holder_name_masked=mask_name(card.holder_name),
        region=card.region,
        status=wire(card.status),
        channels=list(card.channels),
        personal_account_balance_fen=card.balance_fen,
        issued_at=timestamp(card.issued_at),
        suspended_channels=list(card.suspended),
        replaced_at=timestamp(card.replaced_at),
    )


def card_view(card: CardSnapshot) -> types_pb2.CardView:
    return types_pb2.CardView(
        ecard_id=card.ecard_id, holder_name_masked=card.holder_name_masked, region=card.region, status=wire(card.status)
    )


def issuer_key(key: IssuerKey) -> admin_pb2.IssuerKey:
    return admin_pb2.IssuerKey(
        issuer_id=key.issuer_id,
        kid=key.kid,
        algorithm=wire(key.algorithm),
        public_key_pem=key.public_key_pem,
        not_before=timestamp(key.not_before),
        not_after=timestamp(key.not_after),
        revoked=key.revoked,
    )


def merchant(m: Merchant) -> admin_pb2.Merchant:
    return admin_pb2.Merchant(
        merchant_id=m.merchant_id, display_name=m.display_name, kind=wire(m.kind), region=m.region,
        designated=m.designated,
    )
