"""Domain records <-> protobuf messages."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from ecard.errors import InvalidArgument
from ecard.v1 import admin_pb2, cards_pb2, types_pb2, wire
from ecard_server.core.caches import CardSnapshot
from ecard_server.core.identity import mask_card_no, mask_name
from ecard_server.core.records import (
    REFUND_USE,
    SETTLEMENT_USE,
    VERIFICATION_USE,
    Card,
    ChannelEvent,
    CounterBinding,
    IssuerKey,
    Merchant,
    UsageEntry,
)
from ecard_server.core.rules import counter as counter_rules


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


_EVENT_KINDS = {name.removeprefix("CHANNEL_EVENT_KIND_"): value for name, value in cards_pb2.ChannelEventKind.items()}
_BINDING_STATES = {name.removeprefix("BINDING_STATE_"): value for name, value in cards_pb2.BindingState.items()}


def event_kinds(kinds: Iterable[int]) -> tuple[str, ...]:
    """The outbox's names of the ChannelEventKinds a stream asks for; INVALID_ARGUMENT for an unknown one."""
    names = {value: name for name, value in _EVENT_KINDS.items() if value}
    try:
        return tuple(sorted({names[kind] for kind in kinds}))
    except KeyError:
        raise InvalidArgument("kinds must be ChannelEventKind values other than UNSPECIFIED",
                              "INVALID_EVENT_KIND") from None


def channel_event(stored: ChannelEvent) -> cards_pb2.ChannelEvent:
    """An outbox row as the channel sees it: the kind's fields from its detail."""
    d = stored.detail
    message = cards_pb2.ChannelEvent(
        cursor=stored.seq, kind=_EVENT_KINDS.get(stored.kind, 0), ecard_id=stored.ecard_id, at=timestamp(stored.at),
        status=d.get("status", 0), binding_issuer_id=d.get("issuer_id", ""),
        binding_state=_BINDING_STATES.get(d.get("state", ""), 0), settlement_id=d.get("settlement_id", ""),
        merchant_id=d.get("merchant_id", ""), merchant_name=d.get("merchant_name", ""),
        total_fen=d.get("total_fen", 0), fund_paid_fen=d.get("fund_fen", 0),
        personal_account_paid_fen=d.get("account_fen", 0), self_pay_fen=d.get("self_pay_fen", 0),
        personal_account_balance_fen=d.get("balance_fen", 0), kid=d.get("kid", ""),
        card_no_masked=d.get("card_no_masked", ""),
    )
    if "not_after" in d:
        message.key_not_after.CopyFrom(Timestamp(seconds=d["not_after"]))
    return message


_USE_KINDS = {VERIFICATION_USE: cards_pb2.USAGE_KIND_VERIFICATION, SETTLEMENT_USE: cards_pb2.USAGE_KIND_SETTLEMENT,
              REFUND_USE: cards_pb2.USAGE_KIND_REFUND}


def usage_record(use: UsageEntry) -> cards_pb2.UsageRecord:
    return cards_pb2.UsageRecord(
        kind=_USE_KINDS[use.kind], at=timestamp(use.at), merchant_id=use.merchant_id, merchant_name=use.merchant_name,
        terminal_id=use.terminal_id, reason=wire(use.reason), settlement_id=use.settlement_id, total_fen=use.total_fen,
        fund_paid_fen=use.fund_fen, personal_account_paid_fen=use.account_fen, self_pay_fen=use.self_pay_fen,
    )


_COUNTER_STATUS = {counter_rules.PENDING: cards_pb2.COUNTER_BINDING_STATUS_PENDING,
                   counter_rules.COMPLETED: cards_pb2.COUNTER_BINDING_STATUS_COMPLETED,
                   counter_rules.EXPIRED: cards_pb2.COUNTER_BINDING_STATUS_EXPIRED}


def counter_binding(binding: CounterBinding, state: str, card: CardSnapshot | None = None) -> cards_pb2.CounterBinding:
    return cards_pb2.CounterBinding(
        binding_code=binding.code, merchant_id=binding.merchant_id, terminal_id=binding.terminal_id,
        expires_at=timestamp(binding.expires_at), status=_COUNTER_STATUS[state],
        card=card_view(card) if card is not None else None, issuer_id=binding.issuer_id or "",
        qr_text=counter_rules.QR_PREFIX + binding.code, completed_at=timestamp(binding.completed_at),
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
