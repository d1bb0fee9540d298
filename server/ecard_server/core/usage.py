"""Usage history (用卡记录): an e-card's verifications, settlements and refunds as its holder sees them in
the channel's app, newest first, a page at a time. Only a channel bound to the e-card (and the operator)
may read it; any other caller is told the e-card is not found."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable

from ecard.errors import InvalidArgument, NotFound, PermissionDenied
from ecard_server.core import audit
from ecard_server.core.audit import AuditTrail
from ecard_server.core.ports import ReadStore, UsagePages
from ecard_server.core.principals import ADMIN, CHANNEL, Principal
from ecard_server.core.records import UsageEntry
from ecard_server.core.rules import validation

DEFAULT_PAGE, MAX_PAGE = 50, 500


class UsageService:
    def __init__(self, cards: ReadStore, usage: UsagePages, trail: AuditTrail,
                 clock: Callable[[], float] = time.time) -> None:
        self._cards = cards
        self._usage = usage
        self._trail = trail
        self._clock = clock

    def list_usage(self, caller: Principal, ecard_id: str, page_size: int, page_token: str
                   ) -> tuple[list[UsageEntry], str]:
        """One page of the e-card's uses and the token of the next ("" at the end)."""
        if caller.kind not in (ADMIN, CHANNEL):
            raise PermissionDenied("only channels and the operator read usage", "ROLE_NOT_ALLOWED")
        if not ecard_id:
            raise InvalidArgument("ecard_id is required", "MISSING_ECARD_ID")
        validation.identifier(ecard_id, "ecard_id")
        if not 0 <= page_size <= MAX_PAGE:
            raise InvalidArgument(f"page_size must be 0 (the default, {DEFAULT_PAGE}) to {MAX_PAGE}",
                                  "INVALID_PAGE_SIZE")
        before = _position(page_token) if page_token else None
        card = self._cards.get_card(ecard_id=ecard_id)
        if card is None or (caller.kind == CHANNEL and caller.id not in card.channels):
            raise NotFound("no such e-card", "CARD_UNKNOWN")  # another channel's holder: not even that it exists
        limit = page_size or DEFAULT_PAGE
        entries = self._usage.page(ecard_id, before, limit + 1)
        self._trail.record(audit.usage_listed(int(self._clock()), str(caller), ecard_id))
        if len(entries) <= limit:
            return entries, ""
        last = entries[limit - 1]
        return entries[:limit], _token((last.at, last.kind, last.ref))


def _token(position: tuple[int, str, str]) -> str:
    at, kind, ref = position
    return base64.urlsafe_b64encode(f"{at}\x1f{kind}\x1f{ref}".encode()).decode().rstrip("=")


def _position(token: str) -> tuple[int, str, str]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        at, kind, ref = text.split("\x1f")
        if len(token) > 256 or not ref:
            raise ValueError(token)
        return int(at), kind, ref
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is not one this call gave", "INVALID_PAGE_TOKEN") from None
