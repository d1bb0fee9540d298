"""Hospital visits (挂号, 就诊, 结算, 取药): open on the registration scan, add fee items over the day,
settle with a fresh PIN-level credential of the same holder, or cancel (退号). No gRPC here.

The visit is bound to the holder, the hospital and the registration's verification (each verification
opens one visit); its basket is priced exactly as a Settle's (SettlementService.price, then
SettlementService.settle with the visit), and the settlement closes the visit in its own transaction.
A visit left open `visit_ttl_s` after its registration is EXPIRED: nothing can be added or settled.
Another merchant's visit is NOT_FOUND.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecard.errors import FailedPrecondition, InvalidArgument, NotFound
from ecard.v1 import types_pb2 as t
from ecard_server.config import Settings
from ecard_server.core.records import LineItem, SettleInput, SettlementRecord, Visit, VisitDraft
from ecard_server.core.rules import validation
from ecard_server.core.rules import visits as rules

if TYPE_CHECKING:
    from ecard_server.core.caches import MerchantDirectory
    from ecard_server.core.handles import VerificationHandles
    from ecard_server.core.ports import Visits
    from ecard_server.core.settlement import SettlementService
    from ecard_server.core.verification import TokenVerifier

MAX_VISIT_ID = 64
MAX_DEPARTMENT = 64


@dataclass(frozen=True, slots=True)
class OpenVisitInput:
    idempotency_key: str
    verification_id: str = ""
    token: str = ""
    terminal_id: str = ""
    operator_id: str = ""
    department: str = ""


class VisitService:
    def __init__(
        self, *, visits: Visits, settlements: SettlementService, verifier: TokenVerifier,
        handles: VerificationHandles, merchants: MerchantDirectory, settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._visits = visits
        self._settlements = settlements
        self._verifier = verifier
        self._handles = handles
        self._merchants = merchants
        self._ttl = settings.visit_ttl_s
        self._max_items = settings.max_basket_items
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    def open(self, merchant_id: str, request: OpenVisitInput) -> Visit:
        validation.idempotency_key(request.idempotency_key)
        if bool(request.verification_id) == bool(request.token):
            raise InvalidArgument("give exactly one credential: verification_id or token", "MISSING_CREDENTIAL")
        if len(request.verification_id) > validation.MAX_CREDENTIAL or len(request.token) > validation.MAX_CREDENTIAL:
            raise InvalidArgument("the credential is too long", "INVALID_CREDENTIAL")
        validation.till(request.terminal_id, request.operator_id)
        department = validation.text(request.department, "department", required=False, max_len=MAX_DEPARTMENT)
        merchant = self._merchants.get(merchant_id)
        if merchant is None or merchant.kind != t.MERCHANT_KIND_HOSPITAL:
            raise FailedPrecondition("visits are opened at hospitals", "NOT_A_HOSPITAL")
        now = self._now()
        request_hash = rules.open_hash(request.verification_id or request.token, department)
        if request.verification_id:
            verification = self._handles.open(request.verification_id, merchant_id=merchant_id, now=now)
            if verification.purpose != t.PURPOSE_REGISTRATION:
                raise FailedPrecondition("the verification was not for registration",
                                         "VERIFICATION_NOT_FOR_REGISTRATION")
            ecard_id, nonce = verification.ecard_id, verification.nonce
        else:
            outcome = self._verifier.verify_token(request.token, merchant_id=merchant_id,
                                                  purpose=t.PURPOSE_REGISTRATION, min_assurance=t.ASSURANCE_NONE)
            if not outcome.accepted:
                word = t.Reason.Name(outcome.reason).removeprefix("REASON_")
                raise FailedPrecondition(f"token rejected: {word}", word)
            assert outcome.card is not None and outcome.claims is not None
            ecard_id, nonce = outcome.card.ecard_id, outcome.claims.nonce
        draft = VisitDraft(rules.new_visit_id(), merchant_id, request.idempotency_key, request_hash, ecard_id, nonce,
                           now + self._ttl, request.terminal_id, request.operator_id, department)
        return self._visits.open_visit(draft, now)

    def get(self, merchant_id: str, visit_id: str) -> Visit:
        self._visit_id(visit_id)
        visit = self._visits.get_visit(merchant_id, visit_id) if len(visit_id) <= MAX_VISIT_ID else None
        if visit is None:
            raise NotFound("no such visit", "VISIT_UNKNOWN")
        return visit

    @staticmethod
    def _visit_id(visit_id: str) -> None:
        if not visit_id:
            raise InvalidArgument("visit_id is required", "MISSING_VISIT_ID")

    def add_items(self, merchant_id: str, visit_id: str, idempotency_key: str, items: Sequence[LineItem]) -> Visit:
        self._visit_id(visit_id)
        validation.idempotency_key(idempotency_key)
        validation.basket(items, self._max_items)
        self._settlements.price(merchant_id, items)  # priced as Settle prices: an unknown item is refused now
        now = self._now()

        def check(visit: Visit) -> None:
            rules.check_open(visit, now)
            rules.check_items_fit(visit, len(items), self._max_items)

        found = self._visits.add_visit_items(merchant_id, visit_id, idempotency_key,
                                             rules.items_hash(visit_id, items), tuple(items), now, check)
        if found is None:
            raise NotFound("no such visit", "VISIT_UNKNOWN")
        return found

    def settle(self, merchant_id: str, visit_id: str, request: SettleInput) -> SettlementRecord:
        """The visit's basket settled by `request`'s key and credential (a fresh one of the same holder,
        PIN at least); a retry with the key answers with the first record."""
        visit = self.get(merchant_id, visit_id)
        if visit.settlement_id:  # settled before: the same key is a retry (its record); another is refused
            record = self._settlements.get(merchant_id, visit.settlement_id)
            if record.idempotency_key == request.idempotency_key:
                return record
        rules.check_open(visit, self._now())
        return self._settlements.settle(merchant_id, _with_items(request, visit.items), visit=visit)

    def cancel(self, merchant_id: str, visit_id: str) -> Visit:
        self._visit_id(visit_id)
        now = self._now()
        found = self._visits.cancel_visit(merchant_id, visit_id, now, lambda visit: rules.check_open(visit, now))
        if found is None:
            raise NotFound("no such visit", "VISIT_UNKNOWN")
        return found

    def status(self, visit: Visit) -> int:
        return rules.status_at(visit, self._now())


def _with_items(request: SettleInput, items: tuple[LineItem, ...]) -> SettleInput:
    return SettleInput(request.idempotency_key, items, request.verification_id, request.token,
                       request.skip_personal_account, terminal_id=request.terminal_id, operator_id=request.operator_id)
