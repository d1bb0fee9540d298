"""Hospital visits in SQL (core.ports.Visits): open, add fee items, cancel, and their closing by a settlement.

Every write locks the visit's row (FOR UPDATE where the backend has row locks; SQLite's one writer
elsewhere) and decides with the core's rules (core.rules.visits) on what it read under the lock. A
visit is settled inside the settlement's own transaction (`settle_in`, called by the ledger), so a
settlement and its visit's closing commit together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ecard.errors import FailedPrecondition
from ecard_server.core import audit
from ecard_server.core.records import VISIT_CANCELLED, VISIT_OPEN, VISIT_SETTLED, LineItem, Visit, VisitDraft
from ecard_server.core.rules import visits as rules
from ecard_server.core.rules.idempotency import same_request
from ecard_server.storage.mapper import Columns
from ecard_server.storage.rows import Cursor, Transactions, write_audit

VISIT = Columns("visit_id", "merchant_id", "ecard_id", "status", "items", "opened_at", "expires_at", "closed_at",
                "settlement_id", "terminal_id", "department", "idempotency_key", "revision")


def _visit(row: Sequence[Any]) -> Visit:
    v = VISIT.named(row)
    items = tuple(LineItem(*line) for line in json.loads(v["items"]))
    return Visit(v["visit_id"], v["merchant_id"], v["ecard_id"], v["status"], items, v["opened_at"], v["expires_at"],
                 v["closed_at"], v["settlement_id"] or "", v["terminal_id"], v["department"], v["idempotency_key"],
                 v["revision"])


def _items_json(items: Sequence[LineItem]) -> str:
    return json.dumps([[i.code, i.name, i.drug_class, i.unit_price_fen, i.quantity] for i in items],
                      ensure_ascii=False, separators=(",", ":"))


def locked_visit(store: Transactions, cur: Cursor, merchant_id: str, visit_id: str) -> Visit | None:
    """The merchant's visit, its row locked until the transaction ends; None for none (or another's)."""
    cur.execute(f"SELECT {VISIT.select} FROM visits WHERE visit_id = ? AND merchant_id = ?{store.for_update}",
                (visit_id, merchant_id))
    row = cur.fetchone()
    return None if row is None else _visit(row)


def settle_in(store: Transactions, cur: Cursor, merchant_id: str, visit_id: str, revision: int, ecard_id: str,
              settlement_id: str, now: int) -> None:
    """Closes the visit as settled by `settlement_id`, inside the settlement's transaction: it must still
    be open, of this holder, with the items the settlement was priced on (`revision`)."""
    visit = locked_visit(store, cur, merchant_id, visit_id)
    if visit is None:
        raise FailedPrecondition("the visit is gone", "VISIT_UNKNOWN")
    rules.check_open(visit, now)
    rules.check_holder(visit, ecard_id)
    rules.check_revision(visit, revision)
    cur.execute("UPDATE visits SET status = ?, closed_at = ?, settlement_id = ? WHERE visit_id = ?",
                (VISIT_SETTLED, now, settlement_id, visit_id))
    write_audit(cur, audit.visit(now, "VISIT_SETTLED", merchant_id, visit.ecard_id, visit_id, settlement_id))


class SqlVisits:
    def __init__(self, store: Transactions) -> None:
        self._store = store

    def get_visit(self, merchant_id: str, visit_id: str) -> Visit | None:
        found = self._store.rows(f"SELECT {VISIT.select} FROM visits WHERE visit_id = ? AND merchant_id = ?",
                                 (visit_id, merchant_id))
        return _visit(found[0]) if found else None

    def open_visit(self, draft: VisitDraft, now: int) -> Visit:
        return self._store.once_more_on_conflict(lambda: self._open(draft, now))

    def _open(self, draft: VisitDraft, now: int) -> Visit:
        with self._store.transaction() as cur:
            cur.execute(f"SELECT {VISIT.select}, request_hash FROM visits WHERE merchant_id = ? AND "
                        "idempotency_key = ?", (draft.merchant_id, draft.idempotency_key))
            row = cur.fetchone()
            if row is not None:  # a retry of the same registration: the visit it opened
                same_request(bytes(row[-1]), draft.request_hash, "visit")
                return _visit(row[:-1])
            cur.execute("SELECT 1 FROM visits WHERE ecard_id = ? AND verification_nonce = ?",
                        (draft.ecard_id, draft.verification_nonce))
            if cur.fetchone() is not None:
                raise FailedPrecondition("this verification has already opened a visit", "VERIFICATION_USED")
            cur.execute(
                "INSERT INTO visits (visit_id, merchant_id, idempotency_key, request_hash, ecard_id, "
                "verification_nonce, status, items, revision, opened_at, expires_at, terminal_id, operator_id, "
                "department) VALUES (?, ?, ?, ?, ?, ?, ?, '[]', 0, ?, ?, ?, ?, ?)",
                (draft.visit_id, draft.merchant_id, draft.idempotency_key, draft.request_hash, draft.ecard_id,
                 draft.verification_nonce, VISIT_OPEN, now, draft.expires_at, draft.terminal_id, draft.operator_id,
                 draft.department),
            )
            write_audit(cur, audit.visit(now, "VISIT_OPENED", draft.merchant_id, draft.ecard_id, draft.visit_id,
                                         draft.department))
            visit = locked_visit(self._store, cur, draft.merchant_id, draft.visit_id)
            assert visit is not None
            return visit

    def add_visit_items(self, merchant_id: str, visit_id: str, idempotency_key: str, request_hash: bytes,
                        items: Sequence[LineItem], now: int, check: Callable[[Visit], None]) -> Visit | None:
        """Appends `items` once per key; `check(visit)` (the core's rules) runs under the lock first. None
        for no such visit of this merchant."""
        return self._store.once_more_on_conflict(
            lambda: self._add(merchant_id, visit_id, idempotency_key, request_hash, items, now, check))

    def _add(self, merchant_id: str, visit_id: str, key: str, request_hash: bytes, items: Sequence[LineItem],
             now: int, check: Callable[[Visit], None]) -> Visit | None:
        with self._store.transaction() as cur:
            visit = locked_visit(self._store, cur, merchant_id, visit_id)
            if visit is None:
                return None
            cur.execute("SELECT request_hash FROM visit_additions WHERE visit_id = ? AND idempotency_key = ?",
                        (visit_id, key))
            seen = cur.fetchone()
            if seen is not None:  # added before: the visit as it stands, nothing added again
                same_request(bytes(seen[0]), request_hash, "addition of items")
                return visit
            check(visit)
            cur.execute("UPDATE visits SET items = ?, revision = revision + 1 WHERE visit_id = ?",
                        (_items_json((*visit.items, *items)), visit_id))
            cur.execute("INSERT INTO visit_additions (visit_id, idempotency_key, request_hash, added_at) "
                        "VALUES (?, ?, ?, ?)", (visit_id, key, request_hash, now))
            write_audit(cur, audit.visit(now, "VISIT_ITEMS", merchant_id, visit.ecard_id, visit_id,
                                         f"lines={len(items)} amount={sum(i.amount_fen for i in items)}"))
            return locked_visit(self._store, cur, merchant_id, visit_id)

    def cancel_visit(self, merchant_id: str, visit_id: str, now: int, check: Callable[[Visit], None]) -> Visit | None:
        """Closes an open visit with nothing moved (a cancelled one stays as it is); `check(visit)` under
        the lock. None for no such visit of this merchant."""
        with self._store.transaction() as cur:
            visit = locked_visit(self._store, cur, merchant_id, visit_id)
            if visit is None or visit.status == VISIT_CANCELLED:
                return visit
            check(visit)
            cur.execute("UPDATE visits SET status = ?, closed_at = ? WHERE visit_id = ?",
                        (VISIT_CANCELLED, now, visit_id))
            write_audit(cur, audit.visit(now, "VISIT_CANCELLED", merchant_id, visit.ecard_id, visit_id, ""))
            return locked_visit(self._store, cur, merchant_id, visit_id)
