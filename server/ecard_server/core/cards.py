"""The e-card lifecycle: issue (one per physical card, for life), bind channels, lost, reinstate, cancel."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable

from ecard.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from ecard.v1 import types_pb2 as t
from ecard_server.core import events
from ecard_server.core.identity import IdentityHasher
from ecard_server.core.ports import CardStore, ChangeBus
from ecard_server.core.principals import ADMIN, CHANNEL, Principal
from ecard_server.core.records import ACTIVE, CANCELLED, LOST, NOT_ACTIVE_REASON, Card
from ecard_server.core.rules import validation


def new_ecard_id() -> str:
    """'E' and 16 base32 characters (80 random bits): short, so that tokens stay small."""
    return "E" + base64.b32encode(os.urandom(10)).decode("ascii")


class CardService:
    def __init__(
        self, store: CardStore, bus: ChangeBus, hasher: IdentityHasher, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._bus = bus
        self._hasher = hasher
        self._clock = clock

    def issue_ecard(self, channel: Principal, card_no: str, holder_name: str, id_number: str, assurance: int) -> Card:
        validation.card_no(card_no)
        validation.text(holder_name, "holder_name")
        validation.id_number(id_number)
        if assurance < t.ASSURANCE_FACE:
            raise FailedPrecondition("issuing an e-card needs a face check", "ASSURANCE_TOO_LOW")
        card = self._store.get_card(card_no=card_no)
        if card is None:
            raise FailedPrecondition("no enrolled card with this number", "CARD_NOT_ENROLLED")
        if not self._hasher.matches_holder(id_number, holder_name, card.id_hash):
            raise FailedPrecondition("holder details do not match the enrolled card", "IDENTITY_MISMATCH")
        if card.status != ACTIVE:
            raise FailedPrecondition("the physical card is not active", NOT_ACTIVE_REASON[card.status])
        card = self._store.bind_ecard(card_no, channel.id, new_ecard_id(), int(self._clock()))
        self._bus.publish(events.CARD, card.ecard_id or "")
        return card

    def find(self, caller: Principal, *, card_no: str = "", ecard_id: str = "") -> Card:
        """The card a caller names, if the caller may act on it (a channel: only cards bound to it)."""
        if not card_no and not ecard_id:
            raise InvalidArgument("name the card by card_no or ecard_id", "MISSING_CARD_REF")
        card = self._store.get_card(card_no=card_no) if card_no else self._store.get_card(ecard_id=ecard_id)
        if caller.kind == CHANNEL and (card is None or caller.id not in card.channels):
            raise PermissionDenied("the card is not bound to this channel", "CHANNEL_NOT_BOUND")
        if card is None:
            raise NotFound("no such card", "CARD_UNKNOWN")
        return card

    def _set_status(self, caller: Principal, card: Card, status: int) -> Card:
        updated = self._store.set_card_status(card.card_no, status, str(caller), int(self._clock()))
        if card.ecard_id:
            self._bus.publish(events.CARD, card.ecard_id)
        return updated

    def report_lost(self, caller: Principal, **ref: str) -> Card:
        card = self.find(caller, **ref)
        if card.status == CANCELLED:
            raise FailedPrecondition("the card is cancelled", "CARD_CANCELLED")
        return card if card.status == LOST else self._set_status(caller, card, LOST)

    def reinstate(self, caller: Principal, **ref: str) -> Card:
        card = self.find(caller, **ref)
        if card.status == CANCELLED:
            raise FailedPrecondition("a cancelled card cannot be reinstated", "CARD_CANCELLED")
        return card if card.status == ACTIVE else self._set_status(caller, card, ACTIVE)

    def cancel(self, caller: Principal, **ref: str) -> Card:
        if caller.kind != ADMIN:
            raise PermissionDenied("only the operator cancels cards", "ADMIN_ONLY")
        card = self.find(caller, **ref)
        return card if card.status == CANCELLED else self._set_status(caller, card, CANCELLED)
