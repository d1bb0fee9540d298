"""Money movement in SQL: personal-account credits, settlements and refunds, each in one transaction.

`SqlLedger` is owned by its SqlStore (`store.ledger`) and runs on the store's transactions and row
locks. Every change of a balance goes through `_move_balance`, which writes the balance and its
ledger row together, so that an account always equals the sum of its ledger. The rules (may this
card settle, what does the account pay, may this settlement be refunded, is this the same request)
are the core's: they are called with what was read under the row lock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ecard.errors import Unavailable
from ecard_server.core import audit
from ecard_server.core.idempotency import same_request
from ecard_server.core.model import Card
from ecard_server.core.settlement import REFUNDED, SETTLED, Draft, LineItem, RefundDraft, SettlementRecord
from ecard_server.storage.rows import Cursor, Transactions, write_audit


class SqlLedger:
    """The core's Ledger, in SQL, on the transactions of the store that owns it."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    # -- credits ----------------------------------------------------------------------------------
    def credit(self, card_no: str, amount_fen: int, idempotency_key: str, request_hash: bytes, now: int) -> Card:
        """Adds money to a personal account once per idempotency key (a ledger row and the balance)."""
        return self._store.once_more_on_conflict(
            lambda: self._credit(card_no, amount_fen, idempotency_key, request_hash, now)
        )

    def _credit(self, card_no: str, amount_fen: int, idempotency_key: str, request_hash: bytes, now: int) -> Card:
        with self._store.transaction() as cur:
            cur.execute("SELECT request_hash FROM credits WHERE idempotency_key = ?", (idempotency_key,))
            seen = cur.fetchone()
            if seen is not None:
                same_request(bytes(seen[0]), request_hash, "credit")
                card = self._store.locked_card(cur, card_no)
                if card is None:
                    raise LookupError(card_no)
                return card
            card = self._store.locked_card(cur, card_no)
            if card is None:
                raise LookupError(card_no)
            self._move_balance(cur, card_no, card.balance_fen, amount_fen, "CREDIT", idempotency_key, now)
            cur.execute(
                "INSERT INTO credits (idempotency_key, request_hash, card_no, amount_fen, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (idempotency_key, request_hash, card_no, amount_fen, now),
            )
            write_audit(cur, audit.account_credit(now, card.ecard_id or "", amount_fen))
            return self._store.locked_card(cur, card_no)  # type: ignore[return-value]

    def ledger_total(self, card_no: str) -> int:
        """Sum of the card's ledger rows: always equal to its balance."""
        return int(self._store.rows("SELECT COALESCE(SUM(delta_fen), 0) FROM ledger WHERE card_no = ?",
                                    (card_no,))[0][0])

    # -- settlements and refunds ------------------------------------------------------------------------------
    # One transaction per Settle or Refund. Lock order: the card row, then the settlement row.
    # SQLite serialises writers (BEGIN IMMEDIATE); PostgreSQL locks the card row FOR UPDATE, and the
    # UNIQUE keys decide between concurrent duplicates that lock different rows.
    _SETTLEMENT_SELECT = (
        "SELECT s.settlement_id, s.ecard_id, s.merchant_id, s.status, s.total_fen, s.fund_fen, s.account_fen, "
        "s.self_pay_fen, COALESCE(r.balance_after_fen, s.balance_after_fen), s.items, s.settled_at, s.refunded_at, "
        "s.request_hash FROM settlements s LEFT JOIN refunds r ON r.settlement_id = s.settlement_id "
    )

    @staticmethod
    def _settlement(row: Sequence[Any]) -> SettlementRecord:
        items = tuple(LineItem(*line) for line in json.loads(row[9]))
        return SettlementRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], items,
                                row[10], row[11])

    def _select_settlement(self, cur: Cursor | None, where: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        sql = self._SETTLEMENT_SELECT + where
        if cur is None:
            found = self._store.rows(sql, params)
            return found[0] if found else None
        cur.execute(sql, params)
        return cur.fetchone()  # type: ignore[no-any-return]

    def get_settlement(self, settlement_id: str) -> SettlementRecord | None:
        row = self._select_settlement(None, "WHERE s.settlement_id = ?", (settlement_id,))
        return None if row is None else self._settlement(row)

    def find_settlement(self, merchant_id: str, idempotency_key: str) -> tuple[SettlementRecord, bytes] | None:
        """The settlement a merchant made under an idempotency key, with its request hash."""
        row = self._select_settlement(
            None, "WHERE s.merchant_id = ? AND s.idempotency_key = ?", (merchant_id, idempotency_key)
        )
        return None if row is None else (self._settlement(row), bytes(row[12]))

    @classmethod
    def _first_answer(cls, row: Sequence[Any] | None, request_hash: bytes, what: str) -> SettlementRecord | None:
        """The record to answer a repeated request with; AlreadyExists when the key served another request."""
        if row is None:
            return None
        same_request(bytes(row[-1]), request_hash, what)
        return cls._settlement(row)

    def _move_balance(self, cur: Cursor, card_no: str, balance: int, delta: int, kind: str, ref: str,
                      now: int) -> int:
        """Changes a locked balance by `delta` and writes its ledger row; returns the new balance."""
        after = balance + delta
        if delta:
            # Compare-and-set on the value read under the lock: a second guard besides the lock itself.
            cur.execute(
                "UPDATE cards SET balance_fen = ? WHERE card_no = ? AND balance_fen = ? RETURNING balance_fen",
                (after, card_no, balance),
            )
            if cur.fetchone() is None:
                raise Unavailable("the account changed under a settlement; retry", "CONCURRENT_UPDATE")
            cur.execute(
                "INSERT INTO ledger (card_no, delta_fen, balance_after_fen, kind, ref, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (card_no, delta, after, kind, ref, now),
            )
        return after

    def settle(self, draft: Draft, now: int) -> SettlementRecord:
        """Settles a priced basket in one transaction: the account pays what its locked balance allows."""
        try:
            with self._store.transaction() as cur:
                return self._settle(cur, draft, now)
        except self._store.unique_errors:
            # A concurrent duplicate committed first (possible on PostgreSQL): answer with its record.
            row = self._select_settlement(
                None, "WHERE s.merchant_id = ? AND s.idempotency_key = ?", (draft.merchant_id, draft.idempotency_key)
            )
            record = self._first_answer(row, draft.request_hash, "settlement")
            if record is None:
                raise
            return record

    def _settle(self, cur: Cursor, draft: Draft, now: int) -> SettlementRecord:
        cur.execute(f"SELECT card_no, status, balance_fen FROM cards WHERE ecard_id = ?{self._store.for_update}",
                    (draft.ecard_id,))
        card = cur.fetchone()
        earlier = self._first_answer(
            self._select_settlement(cur, "WHERE s.merchant_id = ? AND s.idempotency_key = ?",
                                    (draft.merchant_id, draft.idempotency_key)),
            draft.request_hash,
            "settlement",
        )
        if earlier is not None:
            return earlier
        used = False
        if card is not None:
            cur.execute("SELECT 1 FROM settlements WHERE ecard_id = ? AND verification_nonce = ?",
                        (draft.ecard_id, draft.verification_nonce))
            used = cur.fetchone() is not None
        shares = draft.shares_under_lock(None if card is None else card[1], used, 0 if card is None else card[2])
        card_no, balance = card[0], card[2]
        after = self._move_balance(cur, card_no, balance, -shares.account_fen, "SETTLE", draft.settlement_id, now)
        items = json.dumps(
            [[i.code, i.name, i.drug_class, i.unit_price_fen, i.quantity] for i in draft.items],
            ensure_ascii=False, separators=(",", ":"),
        )
        cur.execute(
            "INSERT INTO settlements (settlement_id, merchant_id, idempotency_key, request_hash, ecard_id, card_no, "
            "status, total_fen, fund_fen, account_fen, self_pay_fen, balance_after_fen, items, verification_nonce, "
            "settled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (draft.settlement_id, draft.merchant_id, draft.idempotency_key, draft.request_hash, draft.ecard_id,
             card_no, SETTLED, draft.split.total_fen, shares.fund_fen, shares.account_fen, shares.self_pay_fen,
             after, items, draft.verification_nonce, now),
        )
        if shares.fund_fen:
            cur.execute(
                "INSERT INTO fund_ledger (settlement_id, merchant_id, delta_fen, kind, created_at) "
                "VALUES (?, ?, ?, 'SETTLE', ?)",
                (draft.settlement_id, draft.merchant_id, shares.fund_fen, now),
            )
        write_audit(cur, audit.settled(now, draft, shares))
        return SettlementRecord(draft.settlement_id, draft.ecard_id, draft.merchant_id, SETTLED,
                                draft.split.total_fen, shares.fund_fen, shares.account_fen, shares.self_pay_fen,
                                after, draft.items, now, None)

    def refund(self, draft: RefundDraft, now: int) -> SettlementRecord:
        """Undoes a settlement once: the account and the fund get back exactly what it took."""
        try:
            with self._store.transaction() as cur:
                return self._refund(cur, draft, now)
        except self._store.unique_errors:
            record = self._refund_answer(None, draft)
            if record is None:
                raise
            return record

    def _refund_answer(self, cur: Cursor | None, draft: RefundDraft) -> SettlementRecord | None:
        sql = "SELECT settlement_id, request_hash FROM refunds WHERE merchant_id = ? AND idempotency_key = ?"
        params = (draft.merchant_id, draft.idempotency_key)
        if cur is None:
            found = self._store.rows(sql, params)
            seen = found[0] if found else None
        else:
            cur.execute(sql, params)
            seen = cur.fetchone()
        if seen is None:
            return None
        same_request(bytes(seen[1]), draft.request_hash, "refund")
        row = self._select_settlement(cur, "WHERE s.settlement_id = ?", (seen[0],))
        return None if row is None else self._settlement(row)

    def _refund(self, cur: Cursor, draft: RefundDraft, now: int) -> SettlementRecord:
        cur.execute("SELECT card_no, merchant_id FROM settlements WHERE settlement_id = ?", (draft.settlement_id,))
        found = cur.fetchone()
        if found is None:
            self._refund_answer(cur, draft)  # raises when the key served a refund of another settlement
        draft.check_owner(None if found is None else found[1])
        card_no = found[0]
        cur.execute(f"SELECT balance_fen FROM cards WHERE card_no = ?{self._store.for_update}", (card_no,))
        card = cur.fetchone()
        earlier = self._refund_answer(cur, draft)
        if earlier is not None:
            return earlier
        cur.execute(
            "SELECT status, account_fen, fund_fen, ecard_id FROM settlements WHERE settlement_id = ?"
            + self._store.for_update,
            (draft.settlement_id,),
        )
        status, account, fund, ecard_id = cur.fetchone()
        draft.check_refundable(status)
        after = self._move_balance(cur, card_no, card[0], account, "REFUND", draft.settlement_id, now)
        cur.execute("UPDATE settlements SET status = ?, refunded_at = ? WHERE settlement_id = ?",
                    (REFUNDED, now, draft.settlement_id))
        cur.execute(
            "INSERT INTO refunds (merchant_id, idempotency_key, request_hash, settlement_id, reason, account_fen, "
            "fund_fen, balance_after_fen, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (draft.merchant_id, draft.idempotency_key, draft.request_hash, draft.settlement_id, draft.reason,
             account, fund, after, now),
        )
        if fund:
            cur.execute(
                "INSERT INTO fund_ledger (settlement_id, merchant_id, delta_fen, kind, created_at) "
                "VALUES (?, ?, ?, 'REFUND', ?)",
                (draft.settlement_id, draft.merchant_id, -fund, now),
            )
        write_audit(cur, audit.refunded(now, draft.merchant_id, ecard_id, draft.settlement_id, account, fund))
        row = self._select_settlement(cur, "WHERE s.settlement_id = ?", (draft.settlement_id,))
        return self._settlement(row)  # type: ignore[arg-type]

    def fund_ledger_total(self, settlement_id: str) -> int:
        """What the fund has paid for a settlement, net of refunds."""
        return int(self._store.rows("SELECT COALESCE(SUM(delta_fen), 0) FROM fund_ledger WHERE settlement_id = ?",
                                    (settlement_id,))[0][0])
