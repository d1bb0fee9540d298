"""Money movement in SQL: personal-account credits, settlements and refunds, each in one transaction.

`SqlLedger` is owned by its SqlStore (`store.ledger`) and runs on the store's transactions and row
locks. Every change of a balance goes through `_move_balance`, which writes the balance and its
ledger row together, so that an account always equals the sum of its ledger. The rules (may this
card settle, what does the account pay, may this settlement be refunded, is this the same request)
are the core's: they are called with what was read under the row lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ecard.errors import Unavailable
from ecard_server.core import audit
from ecard_server.core.identity import mask_card_no
from ecard_server.core.records import (
    CANCELLED,
    CARD_REPLACED,
    PARTIALLY_REFUNDED,
    REFUNDED,
    REFUNDED_EVENT,
    SETTLED,
    SETTLED_EVENT,
    Card,
    Reversal,
    SettlementRecord,
    Shares,
)
from ecard_server.core.rules.accounts import credited_balance
from ecard_server.core.rules.benefits import (
    DEFAULT_CATEGORY,
    NO_ACCUMULATION,
    AccountState,
    Accumulated,
    deductible_back,
    year_of,
)
from ecard_server.core.rules.compact import compact_json
from ecard_server.core.rules.idempotency import same_request
from ecard_server.core.rules.refunds import plan_refund
from ecard_server.core.rules.settlement import Draft, RefundDraft, ReversalDraft, refuse_reversed
from ecard_server.storage import mapper, visits
from ecard_server.storage.rows import Cursor, Transactions, write_audit

ReplacementCheck = Callable[[Card | None, Card | None], None]


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
            credited_balance(card.balance_fen, amount_fen)  # the core's ceiling, on the locked balance
            self._move_balance(cur, card_no, card.balance_fen, amount_fen, "CREDIT", idempotency_key, now)
            cur.execute(
                "INSERT INTO credits (idempotency_key, request_hash, card_no, amount_fen, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (idempotency_key, request_hash, card_no, amount_fen, now),
            )
            write_audit(cur, audit.account_credit(now, card.ecard_id or "", amount_fen))
            return self._store.locked_card(cur, card_no)  # type: ignore[return-value]

    # -- card replacement -------------------------------------------------------------------------
    def replace_card(self, old_card_no: str, new_card_no: str, idempotency_key: str, request_hash: bytes,
                     now: int, check: ReplacementCheck) -> Card:
        """Moves the e-card, its bindings, the balance and the benefit accumulators from the old card to the
        new one, cancels the old one, in one transaction; once per idempotency key."""
        return self._store.once_more_on_conflict(
            lambda: self._replace_card(old_card_no, new_card_no, idempotency_key, request_hash, now, check)
        )

    def _replace_card(self, old_card_no: str, new_card_no: str, idempotency_key: str, request_hash: bytes,
                      now: int, check: ReplacementCheck) -> Card:
        with self._store.transaction() as cur:
            cur.execute("SELECT request_hash, new_card_no FROM card_replacements WHERE idempotency_key = ?",
                        (idempotency_key,))
            seen = cur.fetchone()
            if seen is not None:
                same_request(bytes(seen[0]), request_hash, "card replacement")
                return self._store.locked_card(cur, seen[1])  # type: ignore[return-value]
            # Both rows locked in one order (card number), so two replacements never wait on each other.
            locked = {no: self._store.locked_card(cur, no) for no in sorted((old_card_no, new_card_no))}
            old, new = locked[old_card_no], locked[new_card_no]
            check(old, new)  # the core's rule, on what is locked
            assert old is not None and new is not None and old.ecard_id is not None
            ecard_id, moved = old.ecard_id, old.balance_fen
            # A token carries the e-card id and whole seconds: the replacement's own second is refused too.
            replaced_at = now + 1
            self._move_balance(cur, old_card_no, old.balance_fen, -moved, "REPLACE_OUT", idempotency_key, now)
            cur.execute("UPDATE cards SET ecard_id = NULL, issued_at = NULL, status = ? WHERE card_no = ?",
                        (CANCELLED, old_card_no))
            cur.execute("UPDATE cards SET ecard_id = ?, issued_at = ?, replaced_at = ? WHERE card_no = ?",
                        (ecard_id, old.issued_at, replaced_at, new_card_no))
            self._move_balance(cur, new_card_no, new.balance_fen, moved, "REPLACE_IN", idempotency_key, now)
            # Every year's benefit accumulators go with the balance (the new card's own, if any, add up):
            # the deductible met and the fund's yearly cap are the holder's, whichever card she holds.
            cur.execute("SELECT year, deductible_fen, fund_fen FROM benefit_accumulators WHERE card_no = ?",
                        (old_card_no,))
            for year, deductible_fen, fund_fen in cur.fetchall():
                accumulate(cur, new_card_no, int(year), Accumulated(int(deductible_fen), int(fund_fen)))
            cur.execute("DELETE FROM benefit_accumulators WHERE card_no = ?", (old_card_no,))
            cur.execute(
                "INSERT INTO card_replacements (idempotency_key, request_hash, old_card_no, new_card_no, ecard_id, "
                "moved_fen, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (idempotency_key, request_hash, old_card_no, new_card_no, ecard_id, moved, now),
            )
            write_audit(cur, audit.card_replaced(now, ecard_id, moved))
            card = self._store.locked_card(cur, new_card_no)
            assert card is not None
            self._store.outbox.write(cur, ecard_id, CARD_REPLACED, {
                "card_no_masked": mask_card_no(new_card_no), "balance_fen": card.balance_fen}, now)
            return card

    def ledger_total(self, card_no: str) -> int:
        """Sum of the card's ledger rows: always equal to its balance."""
        return int(self._store.rows("SELECT COALESCE(SUM(delta_fen), 0) FROM ledger WHERE card_no = ?",
                                    (card_no,))[0][0])

    # -- settlements and refunds ------------------------------------------------------------------------------
    # One transaction per Settle or Refund, pipelined (PostgreSQL: the writes whose rows are not read, and
    # the COMMIT, go out together). Lock order: the card row, then the settlement row.
    # SQLite serialises writers (BEGIN IMMEDIATE); PostgreSQL locks the card row FOR UPDATE, and the
    # UNIQUE keys decide between concurrent duplicates that lock different rows.
    def _select_settlement(self, cur: Cursor | None, where: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of one settlement and its refunds (mapper.SETTLEMENT_SELECT); empty when there is none."""
        sql = mapper.SETTLEMENT_SELECT + where + " ORDER BY r.refund_no"
        if cur is None:
            return self._store.rows(sql, params)
        cur.execute(sql, params)
        return [tuple(row) for row in cur.fetchall()]

    def get_settlement(self, settlement_id: str) -> SettlementRecord | None:
        rows = self._select_settlement(None, "WHERE s.settlement_id = ?", (settlement_id,))
        return mapper.settlement(rows) if rows else None

    def settlements(self, settlement_ids: Sequence[str]) -> list[SettlementRecord]:
        """These settlements with their refunds, in the order given (one statement: one snapshot)."""
        if not settlement_ids:
            return []
        marks = ", ".join("?" * len(settlement_ids))
        rows = self._store.rows(mapper.SETTLEMENT_SELECT + f"WHERE s.settlement_id IN ({marks}) "
                                "ORDER BY s.settlement_id, r.refund_no", list(settlement_ids))
        found = {record.settlement_id: record for record in mapper.settlements(rows)}
        return [found[i] for i in settlement_ids if i in found]

    def settle_key(self, merchant_id: str, idempotency_key: str) -> tuple[tuple[SettlementRecord, bytes] | None, bool]:
        """The settlement a merchant made under a Settle key with its request hash (None: none), and whether
        the key was reversed; a key that served nothing costs one statement."""
        (made, reversed_), = self._store.rows(
            "SELECT EXISTS (SELECT 1 FROM settlements WHERE merchant_id = ? AND idempotency_key = ?), "
            "EXISTS (SELECT 1 FROM reversals WHERE merchant_id = ? AND idempotency_key = ?)",
            (merchant_id, idempotency_key, merchant_id, idempotency_key))
        rows = self._select_settlement(
            None, "WHERE s.merchant_id = ? AND s.idempotency_key = ?", (merchant_id, idempotency_key)
        ) if made else []
        return ((mapper.settlement(rows), mapper.request_hash(rows)) if rows else None), bool(reversed_)

    @staticmethod
    def _first_answer(rows: Sequence[Sequence[Any]], request_hash: bytes, what: str) -> SettlementRecord | None:
        """The record to answer a repeated request with; AlreadyExists when the key served another request."""
        if not rows:
            return None
        same_request(mapper.request_hash(rows), request_hash, what)
        return mapper.settlement(rows)

    def _move_balance(self, cur: Cursor, card_no: str, balance: int, delta: int, kind: str, ref: str,
                      now: int, *, writes: Cursor | None = None) -> int:
        """Changes a locked balance by `delta` and writes its ledger row (through `writes`, a
        Transactions.writes block, when given); returns the new balance."""
        after = balance + delta
        if delta:
            # Compare-and-set on the value read under the lock: a second guard besides the lock itself.
            cur.execute(
                "UPDATE cards SET balance_fen = ? WHERE card_no = ? AND balance_fen = ? RETURNING balance_fen",
                (after, card_no, balance),
            )
            if cur.fetchone() is None:
                raise Unavailable("the account changed under a settlement; retry", "CONCURRENT_UPDATE")
            (cur if writes is None else writes).execute(
                "INSERT INTO ledger (card_no, delta_fen, balance_after_fen, kind, ref, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (card_no, delta, after, kind, ref, now),
            )
        return after

    def account_state(self, ecard_id: str, nonce: bytes, now: int) -> AccountState:
        """What a Quote prices with, read in one transaction without locking the card: its status (None:
        no such e-card), whether this credential already settled, the balance, the person category and
        this year's accumulators, in one read (no write transaction: a Quote takes no lock). The Settle
        reads them again under the card's lock."""
        rows = self._store.rows(
            "SELECT c.status, c.balance_fen, c.person_category, COALESCE(a.deductible_fen, 0), "
            "COALESCE(a.fund_fen, 0), EXISTS (SELECT 1 FROM settlements s WHERE s.ecard_id = c.ecard_id "
            "AND s.verification_nonce = ?) FROM cards c LEFT JOIN benefit_accumulators a "
            "ON a.card_no = c.card_no AND a.year = ? WHERE c.ecard_id = ?",
            (nonce, year_of(now), ecard_id),
        )
        if not rows:
            return AccountState(None, False, 0, DEFAULT_CATEGORY, NO_ACCUMULATION)
        status, balance, category, deductible, fund, used = rows[0]
        return AccountState(status, bool(used), balance, category, Accumulated(deductible, fund))

    def settle(self, draft: Draft, now: int) -> SettlementRecord:
        """Settles a priced basket in one transaction: the account pays what its locked balance allows."""
        try:
            with self._store.transaction(pipelined=True) as cur:
                return self._settle(cur, draft, now)
        except self._store.unique_errors:
            # A concurrent duplicate committed first (possible on PostgreSQL): answer with its record.
            rows = self._select_settlement(
                None, "WHERE s.merchant_id = ? AND s.idempotency_key = ?", (draft.merchant_id, draft.idempotency_key)
            )
            record = self._first_answer(rows, draft.request_hash, "settlement")
            if record is None:
                raise
            return record

    def _settle(self, cur: Cursor, draft: Draft, now: int) -> SettlementRecord:
        # 0. Lock the Settle's key (before the card): a reversal of the key waits for this Settle, or it for
        #    the reversal.
        # 1. Then lock the card that holds the e-card (the account), and read its status and balance (one
        #    statement with the key's lock where the backend can).
        select_card = f"SELECT {mapper.ACCOUNT.select} FROM cards WHERE ecard_id = ?"
        self._store.select_locked_under_key(cur, ("settle", draft.merchant_id, draft.idempotency_key), select_card,
                                            (draft.ecard_id,))
        row = cur.fetchone()
        if row is None:
            # Waited on a card row whose e-card a replacement just moved (PostgreSQL rechecks the locked
            # row and drops it): a new statement sees the e-card on its new card.
            cur.execute(select_card + self._store.for_update, (draft.ecard_id,))
            row = cur.fetchone()
        account = mapper.ACCOUNT.named(row) if row is not None else None
        # 2. What the rules decide on, read under the locks in one statement (one round trip): whether the
        #    key served a Settle (answered from its first record) or was reversed, whether this credential
        #    settled before, the current catalogue and policy versions, the year's accumulators.
        year = year_of(now)
        state = settle_state(cur, draft, "" if account is None else account["card_no"], year,
                             self._store.aggregate_text)
        if state.key_used:
            earlier = self._first_answer(
                self._select_settlement(cur, "WHERE s.merchant_id = ? AND s.idempotency_key = ?",
                                        (draft.merchant_id, draft.idempotency_key)),
                draft.request_hash,
                "settlement",
            )
            if earlier is not None:
                return earlier
        if state.key_reversed:
            refuse_reversed()  # reversed before anything was settled under the key
        # 3. The core's rules decide on what was read under the lock: the card's status, whether this
        #    credential settled before, the balance. They raise when the settlement may not be made.
        accumulated = state.accumulated
        draft.check_catalogue(state.catalogue_version)  # priced with the current catalogue, or priced again
        draft.check_policy(state.policy_version)  # and the current benefit policy
        category = DEFAULT_CATEGORY if account is None else account["person_category"]
        shares = draft.shares_under_lock(None if account is None else account["status"], state.credential_used,
                                         0 if account is None else account["balance_fen"], category, accumulated)
        assert account is not None  # an unknown card was refused by the rules
        added = draft.accrual(category, accumulated)
        card_no, balance = account["card_no"], account["balance_fen"]
        line_paid = draft.line_shares(shares)
        # Each line with the shares that paid it and how it was priced: [code, name, class as the POS gave it,
        # unit price, quantity, fund, account, self-pay, priced class, covered, self-pay-first, over the limit,
        # not covered].
        items = compact_json(
            [[i.code, i.name, i.drug_class, i.unit_price_fen, i.quantity, p.fund_fen, p.account_fen, p.self_pay_fen,
              x.drug_class, x.covered_fen, x.self_pay_first_fen, x.over_limit_fen, x.not_covered_fen]
             for i, p, x in zip(draft.items, line_paid, draft.split.lines, strict=True)],
        )
        # 4. Move the money: the balance's compare-and-set (read back), then what nobody reads back in one
        #    statement where the backend can (Transactions.writes): the year's accumulators, the account's
        #    ledger row, the settlement row, the fund's ledger row, the audit row, the channels' event.
        with self._store.writes(cur) as writes:
            accumulate(writes, card_no, year, added)
            after = self._move_balance(cur, card_no, balance, -shares.account_fen, "SETTLE", draft.settlement_id,
                                       now, writes=writes)
            writes.execute(
                "INSERT INTO settlements (settlement_id, merchant_id, idempotency_key, request_hash, ecard_id, "
                "card_no, status, total_fen, fund_fen, account_fen, self_pay_fen, balance_after_fen, items, "
                "verification_nonce, settled_at, catalogue_version, policy_version, terminal_id, operator_id, "
                "benefit_year, deductible_fen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (draft.settlement_id, draft.merchant_id, draft.idempotency_key, draft.request_hash, draft.ecard_id,
                 card_no, SETTLED, draft.split.total_fen, shares.fund_fen, shares.account_fen, shares.self_pay_fen,
                 after, items, draft.verification_nonce, now, draft.split.catalogue_version,
                 draft.split.policy_version, draft.terminal_id, draft.operator_id, year, added.deductible_fen),
            )
            if shares.fund_fen:
                writes.execute(
                    "INSERT INTO fund_ledger (settlement_id, merchant_id, delta_fen, kind, created_at) "
                    "VALUES (?, ?, ?, 'SETTLE', ?)",
                    (draft.settlement_id, draft.merchant_id, shares.fund_fen, now),
                )
            # 5. What the settlement leaves besides: its audit row and the channels' event.
            write_audit(writes, audit.settled(now, draft, shares))
            self._money_event(writes, draft.ecard_id, SETTLED_EVENT, draft.settlement_id, draft.merchant_id,
                              shares, after, now, merchant_name=state.merchant_name, channels=state.channels)
        if draft.visit_id:  # a hospital visit closes with its settlement, or neither commits
            visits.settle_in(self._store, cur, draft.merchant_id, draft.visit_id, draft.visit_revision,
                             draft.ecard_id, draft.settlement_id, now)
        nothing = (Shares(0, 0, 0),) * len(draft.items)
        return SettlementRecord(draft.settlement_id, draft.ecard_id, draft.merchant_id, SETTLED,
                                draft.split.total_fen, shares.fund_fen, shares.account_fen, shares.self_pay_fen,
                                after, draft.items, now, None, Shares(0, 0, 0), (), line_paid, nothing,
                                (0,) * len(draft.items), draft.split.lines, draft.split.catalogue_version,
                                draft.split.policy_version, terminal_id=draft.terminal_id,
                                operator_id=draft.operator_id, idempotency_key=draft.idempotency_key)

    def refund(self, draft: RefundDraft, now: int) -> SettlementRecord:
        """Undoes a settlement once: the account and the fund get back exactly what it took."""
        try:
            with self._store.transaction(pipelined=True) as cur:
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
        rows = self._select_settlement(cur, "WHERE s.settlement_id = ?", (seen[0],))
        return mapper.settlement(rows) if rows else None

    def _refund(self, cur: Cursor, draft: RefundDraft, now: int) -> SettlementRecord:
        # 1. The settlement exists and is the refunding merchant's (a key that served a refund of another
        #    settlement is refused first).
        cur.execute("SELECT card_no, merchant_id, ecard_id FROM settlements WHERE settlement_id = ?",
                    (draft.settlement_id,))
        found = cur.fetchone()
        if found is None:
            self._refund_answer(cur, draft)  # raises when the key served a refund of another settlement
        draft.check_owner(None if found is None else found[1])
        # 2. Lock the card (the account), then answer a repeated request from its first record.
        card_no, balance = self._locked_account(cur, found[2], found[0])
        earlier = self._refund_answer(cur, draft)
        if earlier is not None:
            return earlier
        self._give_back(cur, draft, card_no, balance, now)
        return mapper.settlement(self._select_settlement(cur, "WHERE s.settlement_id = ?", (draft.settlement_id,)))

    def _locked_account(self, cur: Cursor, ecard_id: str, settled_card_no: str) -> tuple[str, int]:
        """The account a settlement's money goes back to, locked: the card that holds its e-card now (after
        a replacement, the new card: the old one was emptied and cancelled), else the card it was paid from."""
        by_ecard = f"SELECT card_no, balance_fen FROM cards WHERE ecard_id = ?{self._store.for_update}"
        cur.execute(by_ecard, (ecard_id,))
        row = cur.fetchone()
        if row is None:  # waited on a row a replacement just moved the e-card from: a new statement sees it
            cur.execute(by_ecard, (ecard_id,))
            row = cur.fetchone()
        if row is None:
            cur.execute(f"SELECT card_no, balance_fen FROM cards WHERE card_no = ?{self._store.for_update}",
                        (settled_card_no,))
            row = cur.fetchone()
        return row[0], int(row[1])

    def _give_back(self, cur: Cursor, draft: RefundDraft, card_no: str, balance: int, now: int) -> Shares:
        """Steps 3-6 of a refund, on a settlement whose card is locked (`balance` read under the lock); a
        reversal's refund too. Returns what it gave back to each share."""
        # 3. Lock the settlement and read what it paid and what its refunds gave back.
        cur.execute(f"SELECT {mapper.PAID.select} FROM settlements WHERE settlement_id = ?{self._store.for_update}",
                    (draft.settlement_id,))
        paid = mapper.PAID.named(cur.fetchone())
        items, line_paid, _ = mapper.basket(paid["items"])
        cur.execute("SELECT lines FROM refunds WHERE settlement_id = ?", (draft.settlement_id,))
        before = mapper.refunded([lines for (lines,) in cur.fetchall()], len(items),
                                 Shares(paid["fund_refunded_fen"], paid["account_refunded_fen"],
                                        paid["self_pay_refunded_fen"]))
        ecard_id = paid["ecard_id"]
        # 4. The core's rule, on what was read under the locks: what this refund gives back, per share.
        plan = plan_refund(items, Shares(paid["fund_fen"], paid["account_fen"], paid["self_pay_fen"]), before,
                           draft.ask, line_paid)
        part = plan.shares
        # 5. Move the money back: the account and its ledger row, the year's benefit accumulators, the
        #    settlement's totals, the refund row, the fund's ledger row.
        after = self._move_balance(cur, card_no, balance, part.account_fen, "REFUND", draft.settlement_id, now)
        back_before = before.shares.total_fen
        restore_accumulators(cur, card_no, paid["benefit_year"], Accumulated(
            deductible_back(paid["deductible_fen"], paid["total_fen"], back_before, back_before + part.total_fen),
            part.fund_fen))
        cur.execute(
            "UPDATE settlements SET status = ?, refunded_at = ?, fund_refunded_fen = fund_refunded_fen + ?, "
            "account_refunded_fen = account_refunded_fen + ?, self_pay_refunded_fen = self_pay_refunded_fen + ?, "
            "refund_count = refund_count + ?, reversed_fen = reversed_fen + ? WHERE settlement_id = ?",
            (REFUNDED if plan.completes else PARTIALLY_REFUNDED, now, part.fund_fen, part.account_fen,
             part.self_pay_fen, 0 if draft.reversal else 1, plan.amount_fen if draft.reversal else 0,
             draft.settlement_id),
        )
        if plan.line_shares:  # [[line index, quantity, fund, account, self-pay]] for each line it touched
            stored = [[n, q, p.fund_fen, p.account_fen, p.self_pay_fen]
                      for n, (q, p) in enumerate(zip(plan.line_quantities, plan.line_shares, strict=True))
                      if q or p.total_fen]
        else:  # a settlement stored before lines kept their shares: [[line index, quantity]]
            stored = [[n, q] for n, q in enumerate(plan.line_quantities) if q]
        lines = json.dumps(stored, separators=(",", ":"))
        cur.execute(
            "INSERT INTO refunds (merchant_id, idempotency_key, request_hash, settlement_id, reason, amount_fen, "
            "fund_fen, account_fen, self_pay_fen, balance_after_fen, lines, created_at, terminal_id, operator_id, "
            "reversal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (draft.merchant_id, draft.idempotency_key, draft.request_hash, draft.settlement_id, draft.reason,
             plan.amount_fen, part.fund_fen, part.account_fen, part.self_pay_fen, after, lines, now,
             draft.terminal_id, draft.operator_id, draft.reversal),
        )
        if part.fund_fen:
            cur.execute(
                "INSERT INTO fund_ledger (settlement_id, merchant_id, delta_fen, kind, created_at) "
                "VALUES (?, ?, ?, 'REFUND', ?)",
                (draft.settlement_id, draft.merchant_id, -part.fund_fen, now),
            )
        # 6. Its audit row and the channels' event.
        write_audit(cur, audit.refunded(now, draft.merchant_id, ecard_id, draft.settlement_id, plan.shares))
        self._money_event(cur, ecard_id, REFUNDED_EVENT, draft.settlement_id, draft.merchant_id, plan.shares, after,
                          now)
        return part

    # -- reversals --------------------------------------------------------------------------------
    def _reversed_at(self, cur: Cursor | None, merchant_id: str, idempotency_key: str) -> int | None:
        sql = "SELECT reversed_at FROM reversals WHERE merchant_id = ? AND idempotency_key = ?"
        if cur is None:
            found = self._store.rows(sql, (merchant_id, idempotency_key))
            return int(found[0][0]) if found else None
        cur.execute(sql, (merchant_id, idempotency_key))
        row = cur.fetchone()
        return None if row is None else int(row[0])

    def reverse(self, draft: ReversalDraft, now: int) -> Reversal:
        with self._store.transaction() as cur:
            return self._reverse(cur, draft, now)

    def _reverse(self, cur: Cursor, draft: ReversalDraft, now: int) -> Reversal:
        # 1. Lock the key, as a Settle under it does first: the Settle either committed before (its
        #    settlement is refunded here) or runs after (REVERSED).
        self._store.lock_key(cur, "settle", draft.merchant_id, draft.idempotency_key)
        first = self._reversed_at(cur, draft.merchant_id, draft.idempotency_key)
        cur.execute("SELECT settlement_id, card_no, ecard_id FROM settlements WHERE merchant_id = ? AND "
                    "idempotency_key = ?", (draft.merchant_id, draft.idempotency_key))
        found = cur.fetchone()
        # 2. Reversed before: the same answer, nothing moves again.
        if first is not None:
            record = None if found is None else mapper.settlement(
                self._select_settlement(cur, "WHERE s.settlement_id = ?", (found[0],)))
            return Reversal(record, first)
        # 3. A settlement under the key: lock its card and give back all that refunds left of it.
        settlement_id = None if found is None else found[0]
        refunded = Shares(0, 0, 0)
        if found is not None:
            card_no, balance = self._locked_account(cur, found[2], found[1])
            cur.execute("SELECT fund_fen + account_fen + self_pay_fen - fund_refunded_fen - account_refunded_fen "
                        "- self_pay_refunded_fen FROM settlements WHERE settlement_id = ?", (settlement_id,))
            if cur.fetchone()[0] > 0:
                refunded = self._give_back(cur, draft.refund(found[0]), card_no, balance, now)
            cur.execute("UPDATE settlements SET reversed_at = ? WHERE settlement_id = ?", (now, settlement_id))
        # 4. The key's reversal row (what bars it) and its audit row.
        cur.execute(
            "INSERT INTO reversals (merchant_id, idempotency_key, settlement_id, terminal_id, operator_id, "
            "reversed_at) VALUES (?, ?, ?, ?, ?, ?)",
            (draft.merchant_id, draft.idempotency_key, settlement_id, draft.terminal_id, draft.operator_id, now),
        )
        write_audit(cur, audit.reversal(now, draft.merchant_id, "" if found is None else found[2],
                                        draft.idempotency_key, settlement_id, refunded))
        record = None if found is None else mapper.settlement(
            self._select_settlement(cur, "WHERE s.settlement_id = ?", (settlement_id,)))
        return Reversal(record, now)

    def _money_event(self, cur: Cursor, ecard_id: str, kind: str, settlement_id: str, merchant_id: str,
                     shares: Shares, balance_after: int, now: int, *, merchant_name: str | None = None,
                     channels: Sequence[str] | None = None) -> None:
        """The channels' SETTLED or REFUNDED event: merchant, amounts, balance after; no one's identity.
        `merchant_name`: the merchant's display name when the caller read it already ("" for none);
        `channels`: the e-card's bound channels, likewise."""
        if merchant_name is None:
            cur.execute("SELECT display_name FROM merchants WHERE merchant_id = ?", (merchant_id,))
            named = cur.fetchone()
            merchant_name = named[0] if named else ""
        self._store.outbox.write(cur, ecard_id, kind, {
            "settlement_id": settlement_id, "merchant_id": merchant_id, "merchant_name": merchant_name,
            "total_fen": shares.total_fen, "fund_fen": shares.fund_fen, "account_fen": shares.account_fen,
            "self_pay_fen": shares.self_pay_fen, "balance_fen": balance_after,
        }, now, channels=channels)

    def fund_ledger_total(self, settlement_id: str) -> int:
        """What the fund has paid for a settlement, net of refunds."""
        return int(self._store.rows("SELECT COALESCE(SUM(delta_fen), 0) FROM fund_ledger WHERE settlement_id = ?",
                                    (settlement_id,))[0][0])


def catalogue_version(cur: Cursor) -> str:
    """The current catalogue version inside a transaction ("" when none was imported)."""
    cur.execute("SELECT COALESCE(MAX(version), 0) FROM catalogue_versions")
    found = cur.fetchone()[0]
    return str(found) if found else ""


class SettleState(NamedTuple):
    """What a Settle's rules read under the key's and the card's locks (settle_state)."""

    key_used: bool  # a settlement was made under the merchant's key
    key_reversed: bool  # the key was reversed
    credential_used: bool  # this credential (e-card, nonce) settled before
    catalogue_version: str  # "" none imported
    policy_version: str  # "" none imported
    accumulated: Accumulated  # the card's for the year
    merchant_name: str  # for the channels' event ("" for an unknown merchant)
    channels: tuple[str, ...]  # the channels bound to the e-card (told of the settlement)


_SETTLE_STATE = (
    "SELECT EXISTS (SELECT 1 FROM settlements WHERE merchant_id = ? AND idempotency_key = ?), "
    "EXISTS (SELECT 1 FROM reversals WHERE merchant_id = ? AND idempotency_key = ?), "
    "EXISTS (SELECT 1 FROM settlements WHERE ecard_id = ? AND verification_nonce = ?), "
    "(SELECT COALESCE(MAX(version), 0) FROM catalogue_versions), "
    "(SELECT COALESCE(MAX(version), 0) FROM benefit_policies), "
    "(SELECT deductible_fen FROM benefit_accumulators WHERE card_no = ? AND year = ?), "
    "(SELECT fund_fen FROM benefit_accumulators WHERE card_no = ? AND year = ?), "
    "(SELECT display_name FROM merchants WHERE merchant_id = ?), "
    "(SELECT {aggregate}(issuer_id, ' ') FROM ecard_channels WHERE ecard_id = ?)"  # ids hold no space
)


def settle_state(cur: Cursor, draft: Draft, card_no: str, year: int, aggregate: str) -> SettleState:
    """In one statement (one round trip), under the Settle's locks: its key, its credential, the current
    catalogue and policy versions, the card's accumulators for the year, the merchant's name, the
    e-card's channels. `aggregate`: the backend's SQL aggregate joining texts (Transactions.aggregate_text)."""
    key = (draft.merchant_id, draft.idempotency_key)
    cur.execute(_SETTLE_STATE.format(aggregate=aggregate), (*key, *key, draft.ecard_id, draft.verification_nonce,
                                                            card_no, year, card_no, year, draft.merchant_id,
                                                            draft.ecard_id))
    key_used, reversed_, used, catalogue, policy, deductible, fund, name, channels = cur.fetchone()
    return SettleState(bool(key_used), bool(reversed_), bool(used), str(catalogue) if catalogue else "",
                       f"b{policy}" if policy else "", Accumulated(deductible or 0, fund or 0),
                       "" if name is None else name, tuple(channels.split(" ")) if channels else ())


def accumulators(cur: Cursor, card_no: str, year: int) -> Accumulated:
    """A card's accumulators for a year (zero for a year with no settlement yet), under its card's lock."""
    cur.execute("SELECT deductible_fen, fund_fen FROM benefit_accumulators WHERE card_no = ? AND year = ?",
                (card_no, year))
    row = cur.fetchone()
    return NO_ACCUMULATION if row is None else Accumulated(row[0], row[1])


def accumulate(cur: Cursor, card_no: str, year: int, added: Accumulated) -> None:
    if added.deductible_fen or added.fund_fen:
        cur.execute(
            "INSERT INTO benefit_accumulators (card_no, year, deductible_fen, fund_fen) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (card_no, year) DO UPDATE SET deductible_fen = benefit_accumulators.deductible_fen + "
            "excluded.deductible_fen, fund_fen = benefit_accumulators.fund_fen + excluded.fund_fen",
            (card_no, year, added.deductible_fen, added.fund_fen),
        )


def restore_accumulators(cur: Cursor, card_no: str, year: int, back: Accumulated) -> None:
    """What a refund (or a reversal: it is a whole refund) gives back of the year's accumulators of the
    settlement's own year, under the card's lock. The one function every giving-back calls."""
    if back.deductible_fen or back.fund_fen:
        cur.execute(
            "UPDATE benefit_accumulators SET deductible_fen = deductible_fen - ?, fund_fen = fund_fen - ? "
            "WHERE card_no = ? AND year = ?",
            (back.deductible_fen, back.fund_fen, card_no, year),
        )
