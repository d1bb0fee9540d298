"""The e-card lifecycle: issue (one per physical card, for life), bind channels, lost, reinstate, cancel."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable

from ecard.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from ecard_server.config import Settings
from ecard_server.core import audit, events
from ecard_server.core.assurance import Statement, check_statement
from ecard_server.core.caches import KeyRegistry
from ecard_server.core.identity import IdentityHasher, mask_card_no
from ecard_server.core.ports import CardStore, ChangeBus, Ledger
from ecard_server.core.principals import ADMIN, CHANNEL, Principal, channel_acted_for
from ecard_server.core.records import ACTIVE, CANCELLED, LOST, NOT_ACTIVE_REASON, RESUME, SUSPEND, UNBIND, Card
from ecard_server.core.rules import counter as counter_rules
from ecard_server.core.rules import validation


def new_ecard_id() -> str:
    """'E' and 16 base32 characters (80 random bits): short, so that tokens stay small."""
    return "E" + base64.b32encode(os.urandom(10)).decode("ascii")


class CardService:
    def __init__(
        self, store: CardStore, bus: ChangeBus, hasher: IdentityHasher, keys: KeyRegistry, settings: Settings,
        clock: Callable[[], float] = time.time, *, ledger: Ledger | None = None,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._bus = bus
        self._hasher = hasher
        self._keys = keys
        self._settings = settings
        self._clock = clock

    def issue_ecard(
        self, channel: Principal, card_no: str, holder_name: str, id_number: str, statement: Statement,
        binding_code: str = "",
    ) -> Card:
        """Issues (or binds `channel` to) the card's e-card on the channel's signed statement of a face
        check. Every mismatch answers the same IDENTITY_MISMATCH, whether the number is enrolled or
        not; failures are audited and throttled per channel and per card number, in the store (so
        across every process): past a limit, RESOURCE_EXHAUSTED ISSUANCE_THROTTLED."""
        validation.card_no(card_no)
        validation.text(holder_name, "holder_name")
        validation.id_number(id_number)
        code = counter_rules.binding_code(binding_code) if binding_code else ""
        settings, now = self._settings, int(self._clock())
        attestation = check_statement(
            statement, issuer_id=channel.id, card_no=card_no, keys=self._keys, now=now,
            max_age_s=settings.issue_assurance_max_age_s, skew_s=settings.clock_skew_s, binding_code=code,
        )
        scopes = ((f"channel:{channel.id}", settings.issue_failures_per_channel),
                  (f"card:{self._hasher.card_tag(card_no)}", settings.issue_failures_per_card))
        wait = self._store.charge_issue_attempt(scopes, settings.issue_failure_window_s, now)
        if wait:
            raise ResourceExhausted("too many failed issuance attempts: try again later", "ISSUANCE_THROTTLED",
                                    {"retry_after_ms": str(wait * 1000)})
        card = self._store.get_card(card_no=card_no)
        # The holder hash is computed whether the card exists or not: the answer and its time say nothing.
        matches = self._hasher.matches_holder(id_number, holder_name, card.id_hash if card else b"\x00" * 32)
        if card is None or not matches:
            self._store.append_audit([audit.issue_refused(now, channel.id, (card.ecard_id or "") if card else "",
                                                          mask_card_no(card_no))])
            raise FailedPrecondition("no enrolled card matches these holder details", "IDENTITY_MISMATCH")
        self._store.refund_issue_attempt([scope for scope, _ in scopes])
        if card.status != ACTIVE:
            raise FailedPrecondition("the physical card is not active", NOT_ACTIVE_REASON[card.status])
        vouched = (f"kid={attestation.kid} assurance={attestation.assurance} checked_at={attestation.checked_at} "
                   f"statement={statement.digest}")
        card = self._store.bind_ecard(card_no, channel.id, new_ecard_id(), now, statement.signed, vouched, code)
        self._bus.publish(events.CARD, card.ecard_id or "")
        if code:  # the merchant's long poll, on whichever replica it waits
            self._bus.publish(events.COUNTER_BINDING, code)
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

    # -- one channel's binding ----------------------------------------------------------------------
    def suspend_binding(self, caller: Principal, ecard_id: str, issuer_id: str) -> Card:
        return self._change_binding(caller, ecard_id, issuer_id, SUSPEND)

    def resume_binding(self, caller: Principal, ecard_id: str, issuer_id: str) -> Card:
        return self._change_binding(caller, ecard_id, issuer_id, RESUME)

    def unbind(self, caller: Principal, ecard_id: str, issuer_id: str) -> Card:
        return self._change_binding(caller, ecard_id, issuer_id, UNBIND)

    def _change_binding(self, caller: Principal, ecard_id: str, issuer_id: str, change: str) -> Card:
        """A channel acts on its own binding only (an empty issuer_id is its own); the operator on any
        channel's, named. Repeating a suspension or resumption changes nothing and answers the card."""
        if not ecard_id:
            raise InvalidArgument("ecard_id is required", "MISSING_ECARD_ID")
        validation.identifier(ecard_id, "ecard_id")
        issuer_id = channel_acted_for(caller, issuer_id)
        card = self._store.get_card(ecard_id=ecard_id)
        if card is None or issuer_id not in card.channels:
            if caller.kind == CHANNEL:  # the same answer whether the e-card exists or not
                raise PermissionDenied("the card is not bound to this channel", "CHANNEL_NOT_BOUND")
            if card is None:
                raise NotFound("no such e-card", "CARD_UNKNOWN")
            raise NotFound(f"the e-card is not bound to {issuer_id}", "CHANNEL_NOT_BOUND")
        event = audit.binding_changed(int(self._clock()), str(caller), ecard_id, issuer_id, change)
        after, changed = self._store.change_binding(ecard_id, issuer_id, change, event)
        if changed:
            self._bus.publish(events.CARD, ecard_id)
        return after if after is not None else card

    # -- card replacement (补换卡) ---------------------------------------------------------------------
    def replace_card(self, caller: Principal, old_card_no: str, new_card_no: str, idempotency_key: str) -> Card:
        """Moves the e-card, its bindings, the balance and the benefit accumulators from the old card to the
        new one and cancels the old card, in one transaction; tokens minted before are REASON_CARD_REPLACED
        from then on."""
        if caller.kind != ADMIN:
            raise PermissionDenied("only the operator replaces cards", "ADMIN_ONLY")
        validation.card_no(old_card_no)
        validation.card_no(new_card_no)
        validation.idempotency_key(idempotency_key)
        if old_card_no == new_card_no:
            raise InvalidArgument("old_card_no and new_card_no are the same card", "SAME_CARD")
        if self._ledger is None:
            raise RuntimeError("CardService was made without a ledger")
        request_hash = hashlib.sha256(f"replace\x00{old_card_no}\x00{new_card_no}".encode()).digest()
        card = self._ledger.replace_card(
            old_card_no, new_card_no, idempotency_key, request_hash, int(self._clock()), check_replacement
        )
        if card.ecard_id:
            self._bus.publish(events.CARD, card.ecard_id)
        return card


def check_replacement(old: Card | None, new: Card | None) -> None:
    """May the e-card of `old` move to `new`? Read under the lock of both rows. The old card may be lost
    (the usual reason to replace it), not cancelled; the new one enrolled for the same holder, active,
    and without an e-card of its own."""
    if old is None:
        raise NotFound("no enrolled card with old_card_no", "CARD_UNKNOWN")
    if old.ecard_id is None:
        raise FailedPrecondition("the old card has no e-card to move", "NO_ECARD")
    if old.status == CANCELLED:
        raise FailedPrecondition("the old card is cancelled", "CARD_CANCELLED")
    if new is None:
        raise FailedPrecondition("the new card is not enrolled", "CARD_NOT_ENROLLED")
    if new.id_hash != old.id_hash:
        raise FailedPrecondition("the new card is enrolled for another holder", "IDENTITY_MISMATCH")
    if new.status != ACTIVE:
        raise FailedPrecondition("the new card is not active", NOT_ACTIVE_REASON[new.status])
    if new.ecard_id is not None:
        raise FailedPrecondition("the new card already has an e-card", "ECARD_EXISTS")
