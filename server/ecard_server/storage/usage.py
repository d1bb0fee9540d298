"""An e-card's usage history in SQL: its verifications (from the audit trail), settlements and refunds,
newest first, a page at a time (keyset paging on (time, kind, ref), so a page never repeats or skips
a row whatever is written meanwhile)."""

from __future__ import annotations

from typing import Any

from ecard_server.core.records import REFUND_USE, SETTLEMENT_USE, VERIFICATION_USE, UsageEntry
from ecard_server.storage.rows import Transactions

# Every use of one e-card as (at, kind, ref, merchant, terminal and reason, amounts). A ref only has to
# order ties within a second the same way on every read (text order of numbers will do).
_USES = f"""
    SELECT a.at AS at, '{VERIFICATION_USE}' AS kind, CAST(a.event_id AS TEXT) AS ref, a.actor AS merchant_id,
           a.detail AS detail, '' AS settlement_id, 0 AS total, 0 AS fund, 0 AS account, 0 AS self_pay
      FROM audit a WHERE a.subject = ? AND a.kind = 'VERIFY'
    UNION ALL
    SELECT s.settled_at, '{SETTLEMENT_USE}', s.settlement_id, s.merchant_id, '', s.settlement_id, s.total_fen,
           s.fund_fen, s.account_fen, s.self_pay_fen
      FROM settlements s WHERE s.ecard_id = ?
    UNION ALL
    SELECT r.created_at, '{REFUND_USE}', CAST(r.refund_no AS TEXT),
           r.merchant_id, '', r.settlement_id, r.amount_fen, r.fund_fen, r.account_fen, r.self_pay_fen
      FROM refunds r JOIN settlements s2 ON s2.settlement_id = r.settlement_id WHERE s2.ecard_id = ?
"""


class UsageHistory:
    def __init__(self, store: Transactions) -> None:
        self._store = store

    def page(self, ecard_id: str, before: tuple[int, str, str] | None, limit: int) -> list[UsageEntry]:
        """At most `limit` uses of the e-card, newest first, older than `before` (at, kind, ref)."""
        where = ""
        params: list[Any] = [ecard_id, ecard_id, ecard_id]
        if before is not None:
            at, kind, ref = before
            where = "WHERE u.at < ? OR (u.at = ? AND u.kind < ?) OR (u.at = ? AND u.kind = ? AND u.ref < ?)"
            params += [at, at, kind, at, kind, ref]
        rows = self._store.rows(
            f"SELECT u.at, u.kind, u.ref, u.merchant_id, COALESCE(m.display_name, ''), u.detail, u.settlement_id, "
            f"u.total, u.fund, u.account, u.self_pay FROM ({_USES}) u "
            f"LEFT JOIN merchants m ON m.merchant_id = u.merchant_id {where} "
            f"ORDER BY u.at DESC, u.kind DESC, u.ref DESC LIMIT {int(limit)}",
            params,
        )
        return [_entry(row) for row in rows]


def _entry(row: Any) -> UsageEntry:
    at, kind, ref, merchant_id, name, detail, settlement_id, total, fund, account, self_pay = row
    terminal_id, reason = "", 0
    if kind == VERIFICATION_USE:  # the VERIFY audit row's detail: "<terminal_id> <reason>"
        terminal_id, _, reason_text = str(detail).rpartition(" ")
        reason = int(reason_text) if reason_text.isdigit() else 0
    return UsageEntry(kind, int(at), str(ref), merchant_id, name, terminal_id, reason, settlement_id,
                      int(total), int(fund), int(account), int(self_pay))
