"""The rules of a hospital visit: its status at a time, what may be done to it, its ids and hashes.

    OPEN --AddVisitItems--> OPEN --SettleVisit--> SETTLED
      \\--CancelVisit (退号)--> CANCELLED          (nothing moved)
      \\--now >= expires_at--> EXPIRED              (nothing moved; read as such, never written)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence

from ecard.errors import FailedPrecondition
from ecard_server.core.records import VISIT_CANCELLED, VISIT_EXPIRED, VISIT_OPEN, VISIT_SETTLED, LineItem, Visit

_CLOSED: dict[int, str] = {
    VISIT_SETTLED: "VISIT_SETTLED", VISIT_CANCELLED: "VISIT_CANCELLED", VISIT_EXPIRED: "VISIT_EXPIRED",
}


def status_at(visit: Visit, now: int) -> int:
    """OPEN, SETTLED, CANCELLED, or EXPIRED for an open visit past its expiry."""
    if visit.status == VISIT_OPEN and now >= visit.expires_at:
        return VISIT_EXPIRED
    return visit.status


def check_open(visit: Visit, now: int) -> None:
    """FailedPrecondition (VISIT_SETTLED, VISIT_CANCELLED or VISIT_EXPIRED) unless the visit is open."""
    status = status_at(visit, now)
    if status != VISIT_OPEN:
        raise FailedPrecondition(f"the visit is {_CLOSED[status].removeprefix('VISIT_').lower()}", _CLOSED[status])


def check_items_fit(visit: Visit, added: int, max_items: int) -> None:
    if len(visit.items) + added > max_items:
        raise FailedPrecondition(f"a visit holds at most {max_items} fee items", "VISIT_TOO_LARGE")


def check_revision(visit: Visit, revision: int) -> None:
    """Items were added since the visit was priced for settling: price it again."""
    if visit.revision != revision:
        raise FailedPrecondition("fee items were added while the visit was being settled: settle again",
                                 "VISIT_CHANGED")


def check_holder(visit: Visit, ecard_id: str) -> None:
    if ecard_id != visit.ecard_id:
        raise FailedPrecondition("the credential is not the registered holder's", "VISIT_HOLDER_MISMATCH")


def new_visit_id() -> str:
    """'V' and 16 base32 characters (80 random bits)."""
    return "V" + base64.b32encode(os.urandom(10)).decode("ascii")


def _digest(form: object) -> bytes:
    return hashlib.sha256(json.dumps(form, ensure_ascii=False, separators=(",", ":")).encode()).digest()


def open_hash(credential: str, department: str) -> bytes:
    """An OpenVisit's identity for its idempotency key (the till and cashier are not part of it)."""
    return _digest(["open-visit", credential, department])


def items_hash(visit_id: str, items: Sequence[LineItem]) -> bytes:
    return _digest(["visit-items", visit_id, [[i.code, i.name, i.drug_class, i.unit_price_fen, i.quantity]
                                              for i in items]])
