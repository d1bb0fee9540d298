"""Reconciliation reads in SQL (core.statements.Statements): a page of settlements, a day's sums.

Both read the settlements table through its index on (merchant_id, settled_at, settlement_id); the
sums are one aggregate over the day's rows, which keep their refund count, refunded shares and
reversed amount up to date (storage.ledger), so no refund row is read for a total.
"""

from __future__ import annotations

from typing import Any

from ecard_server.core.records import SettlementQuery, SettlementRecord, Totals
from ecard_server.storage.ledger import SqlLedger
from ecard_server.storage.rows import Transactions

_SUMS = (
    "COUNT(*), SUM(total_fen), SUM(fund_fen), SUM(account_fen), SUM(self_pay_fen), SUM(refund_count), "
    "SUM(fund_refunded_fen), SUM(account_refunded_fen), SUM(self_pay_refunded_fen), "
    "SUM(CASE WHEN reversed_at IS NULL THEN 0 ELSE 1 END), SUM(reversed_fen)"
)


class SqlStatements:
    def __init__(self, store: Transactions, ledger: SqlLedger) -> None:
        self._store = store
        self._ledger = ledger

    def settlement_page(self, query: SettlementQuery, limit: int) -> list[SettlementRecord]:
        where = ["merchant_id = ?"]
        params: list[Any] = [query.merchant_id]
        if query.since is not None:
            where.append("settled_at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("settled_at < ?")
            params.append(query.until)
        if query.terminal_id:
            where.append("terminal_id = ?")
            params.append(query.terminal_id)
        if query.after is not None:
            where.append("(settled_at > ? OR (settled_at = ? AND settlement_id > ?))")
            params += [query.after[0], query.after[0], query.after[1]]
        ids = self._store.rows(
            f"SELECT settlement_id FROM settlements WHERE {' AND '.join(where)} "
            f"ORDER BY settled_at, settlement_id LIMIT {int(limit)}", params,
        )
        return self._ledger.settlements([row[0] for row in ids])

    def settlement_totals(self, since: int, until: int, merchant_id: str | None) -> list[tuple[str, str, Totals]]:
        where = "settled_at >= ? AND settled_at < ?"
        params: list[Any] = [since, until]
        if merchant_id is not None:
            where = "merchant_id = ? AND " + where
            params.insert(0, merchant_id)
        rows = self._store.rows(
            f"SELECT merchant_id, terminal_id, {_SUMS} FROM settlements WHERE {where} "
            "GROUP BY merchant_id, terminal_id ORDER BY merchant_id, terminal_id", params,
        )
        return [(row[0], row[1], Totals(*(int(v) for v in row[2:]))) for row in rows]
