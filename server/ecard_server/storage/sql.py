"""SqlStore: every query of ecard, written once in portable SQL for SQLite and PostgreSQL.

A backend subclass supplies connections (`_transaction`, `_rows`), the dialect words of the
migrations, and which driver errors mean "the store is down" (-> ecard.errors.Unavailable, so
callers fail closed) or "a unique key was taken".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar, Protocol

from ecard.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied, Unavailable
from ecard_server.core.model import ACTIVE, LOST, Card, EnrollRow, Issuer, IssuerKey, Merchant
from ecard_server.core.settlement import REFUNDED, SETTLED, Draft, LineItem, RefundDraft, SettlementRecord
from ecard_server.storage.migrations import MIGRATIONS

_CARD_COLUMNS = "card_no, holder_name, id_hash, region, status, balance_fen, ecard_id, issued_at"
_KEY_COLUMNS = "issuer_id, kid, algorithm, public_key_pem, not_before, not_after, revoked"


class Cursor(Protocol):
    """The slice of a DB-API cursor that SqlStore uses, with `?` placeholders on every backend."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class SqlStore:
    backend: ClassVar[str] = ""  # "sqlite" or "postgresql": a migration statement may be for one only
    dialect: ClassVar[dict[str, str]] = {}
    for_update = ""  # row lock suffix inside a transaction, where the backend has one
    transient_errors: tuple[type[BaseException], ...] = ()
    unique_errors: tuple[type[BaseException], ...] = ()
    url = ""

    # -- what a backend provides ------------------------------------------------------------------
    def _transaction(self) -> AbstractContextManager[Cursor]:
        """A cursor inside one write transaction: committed on exit, rolled back on error."""
        raise NotImplementedError

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Runs one read and returns all rows."""
        raise NotImplementedError

    def _apply_migration(self, cur: Cursor, version: int, statements: list[str]) -> None:
        for statement in statements:
            if statement.startswith("-- only ") and not statement.startswith(f"-- only {self.backend}\n"):
                continue  # another backend's statement
            cur.execute(statement.format(**self.dialect))
        cur.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))

    def _lock_migrations(self, cur: Cursor) -> None:
        """Serialises `migrate` across processes starting at once, where the transaction does not already."""

    def close(self) -> None:
        raise NotImplementedError

    # -- plumbing ---------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        try:
            with self._transaction() as cur:
                yield cur
        except self.transient_errors as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}", "STORE_UNAVAILABLE") from exc

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._rows(sql, params)
        except self.transient_errors as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}", "STORE_UNAVAILABLE") from exc

    def migrate(self) -> int:
        """Applies the migrations this database lacks; returns the schema version."""
        with self.transaction() as cur:
            self._lock_migrations(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            current = cur.fetchone()[0]
            for version, statements in MIGRATIONS:
                if version > current:
                    self._apply_migration(cur, version, statements)
                    current = version
        return current

    def secret(self) -> bytes:
        """The server secret (identity hashing, verification handles), made once per deployment."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO meta (name, value) VALUES ('server_secret', ?) ON CONFLICT (name) DO NOTHING",
                (os.urandom(32),),
            )
            cur.execute("SELECT value FROM meta WHERE name = 'server_secret'")
            return bytes(cur.fetchone()[0])

    # -- issuers and keys -------------------------------------------------------------------------
    def upsert_issuer(self, issuer: Issuer, now: int) -> Issuer:
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO issuers (issuer_id, display_name, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (issuer_id) DO UPDATE SET display_name = excluded.display_name, "
                "updated_at = excluded.updated_at",
                (issuer.issuer_id, issuer.display_name, now),
            )
        return issuer

    def get_issuer(self, issuer_id: str) -> Issuer | None:
        found = self.rows("SELECT issuer_id, display_name FROM issuers WHERE issuer_id = ?", (issuer_id,))
        return Issuer(*found[0]) if found else None

    def list_issuer_ids(self) -> list[str]:
        return [row[0] for row in self.rows("SELECT issuer_id FROM issuers")]

    @staticmethod
    def _key(row: Sequence[Any]) -> IssuerKey:
        return IssuerKey(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]))

    def get_key(self, issuer_id: str, kid: str) -> IssuerKey | None:
        found = self.rows(
            f"SELECT {_KEY_COLUMNS} FROM issuer_keys WHERE issuer_id = ? AND kid = ?", (issuer_id, kid)
        )
        return self._key(found[0]) if found else None

    def list_keys(self, issuer_id: str | None = None) -> list[IssuerKey]:
        if issuer_id is None:
            found = self.rows(f"SELECT {_KEY_COLUMNS} FROM issuer_keys ORDER BY issuer_id, created_at, kid")
        else:
            found = self.rows(
                f"SELECT {_KEY_COLUMNS} FROM issuer_keys WHERE issuer_id = ? ORDER BY created_at, kid", (issuer_id,)
            )
        return [self._key(row) for row in found]

    def register_key(self, key: IssuerKey, now: int) -> IssuerKey:
        """Adds a key; the same key again updates its validity window; another key under a taken kid
        is AlreadyExists. Revocation is never undone here."""
        with self.transaction() as cur:
            cur.execute(
                f"SELECT {_KEY_COLUMNS} FROM issuer_keys WHERE issuer_id = ? AND kid = ?{self.for_update}",
                (key.issuer_id, key.kid),
            )
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    f"INSERT INTO issuer_keys ({_KEY_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key.issuer_id, key.kid, key.algorithm, key.public_key_pem, key.not_before, key.not_after,
                     False, now),
                )
                return IssuerKey(key.issuer_id, key.kid, key.algorithm, key.public_key_pem,
                                 key.not_before, key.not_after, False)
            existing = self._key(row)
            if existing.public_key_pem.strip() != key.public_key_pem.strip():
                raise AlreadyExists(f"kid {key.kid} is taken by another key", "KID_IN_USE")
            cur.execute(
                "UPDATE issuer_keys SET not_before = ?, not_after = ? WHERE issuer_id = ? AND kid = ?",
                (key.not_before, key.not_after, key.issuer_id, key.kid),
            )
            return IssuerKey(existing.issuer_id, existing.kid, existing.algorithm, existing.public_key_pem,
                             key.not_before, key.not_after, existing.revoked)

    def revoke_key(self, issuer_id: str, kid: str) -> IssuerKey | None:
        with self.transaction() as cur:
            cur.execute("UPDATE issuer_keys SET revoked = ? WHERE issuer_id = ? AND kid = ?", (True, issuer_id, kid))
        return self.get_key(issuer_id, kid)

    # -- merchants --------------------------------------------------------------------------------
    def upsert_merchant(self, m: Merchant, now: int) -> Merchant:
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO merchants (merchant_id, display_name, kind, region, designated, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (merchant_id) DO UPDATE SET "
                "display_name = excluded.display_name, kind = excluded.kind, region = excluded.region, "
                "designated = excluded.designated, updated_at = excluded.updated_at",
                (m.merchant_id, m.display_name, m.kind, m.region, m.designated, now),
            )
        return m

    def list_merchants(self) -> list[Merchant]:
        return [
            Merchant(r[0], r[1], r[2], r[3], bool(r[4]))
            for r in self.rows("SELECT merchant_id, display_name, kind, region, designated FROM merchants")
        ]

    # -- cards ------------------------------------------------------------------------------------
    def enroll(self, rows: Sequence[EnrollRow], now: int) -> tuple[int, int]:
        """Enrolls new cards and updates name, identity hash and region of known ones, in one
        transaction. Never touches an existing balance. Returns (enrolled, updated)."""
        if not rows:
            return 0, 0
        latest = {row.card_no: row for row in rows}  # the last row for a card number wins
        numbers = list(latest)
        with self.transaction() as cur:
            known: set[str] = set()
            for start in range(0, len(numbers), 500):
                chunk = numbers[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                cur.execute(f"SELECT card_no FROM cards WHERE card_no IN ({marks})", chunk)
                known.update(r[0] for r in cur.fetchall())
            fresh = [latest[n] for n in numbers if n not in known]
            if fresh:
                cur.executemany(
                    "INSERT INTO cards (card_no, holder_name, id_hash, region, status, balance_fen, enrolled_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r.card_no, r.holder_name, r.id_hash, r.region, ACTIVE, r.opening_balance_fen, now)
                     for r in fresh],
                )
                opening = [r for r in fresh if r.opening_balance_fen]
                if opening:
                    cur.executemany(
                        "INSERT INTO ledger (card_no, delta_fen, balance_after_fen, kind, ref, created_at) "
                        "VALUES (?, ?, ?, 'OPENING', '', ?)",
                        [(r.card_no, r.opening_balance_fen, r.opening_balance_fen, now) for r in opening],
                    )
            if known:
                cur.executemany(
                    "UPDATE cards SET holder_name = ?, id_hash = ?, region = ? WHERE card_no = ?",
                    [(latest[n].holder_name, latest[n].id_hash, latest[n].region, n) for n in numbers if n in known],
                )
        return len(fresh), len(known)

    def _card_from(self, cur: Cursor | None, row: Sequence[Any] | None) -> Card | None:
        if row is None:
            return None
        ecard_id = row[6]
        channels: tuple[str, ...] = ()
        if ecard_id:
            sql = "SELECT issuer_id FROM ecard_channels WHERE ecard_id = ? ORDER BY bound_at, issuer_id"
            if cur is None:
                found = self.rows(sql, (ecard_id,))
            else:
                cur.execute(sql, (ecard_id,))
                found = cur.fetchall()
            channels = tuple(r[0] for r in found)
        return Card(row[0], row[1], bytes(row[2]), row[3], row[4], row[5], ecard_id, row[7], channels)

    def get_card(self, *, card_no: str | None = None, ecard_id: str | None = None) -> Card | None:
        if card_no is not None:
            found = self.rows(f"SELECT {_CARD_COLUMNS} FROM cards WHERE card_no = ?", (card_no,))
        else:
            found = self.rows(f"SELECT {_CARD_COLUMNS} FROM cards WHERE ecard_id = ?", (ecard_id,))
        return self._card_from(None, found[0] if found else None)

    def _locked_card(self, cur: Cursor, card_no: str) -> Card | None:
        cur.execute(f"SELECT {_CARD_COLUMNS} FROM cards WHERE card_no = ?{self.for_update}", (card_no,))
        return self._card_from(cur, cur.fetchone())

    def bind_ecard(self, card_no: str, issuer_id: str, new_ecard_id: str, now: int) -> Card:
        """Gives the card its e-card (once, for life: `new_ecard_id` is used only if it has none yet)
        and binds the channel."""
        with self.transaction() as cur:
            card = self._locked_card(cur, card_no)
            if card is None:
                raise LookupError(card_no)
            ecard_id = card.ecard_id
            if ecard_id is None:
                ecard_id = new_ecard_id
                cur.execute("UPDATE cards SET ecard_id = ?, issued_at = ? WHERE card_no = ?", (ecard_id, now, card_no))
            cur.execute(
                "INSERT INTO ecard_channels (ecard_id, issuer_id, bound_at) VALUES (?, ?, ?) "
                "ON CONFLICT (ecard_id, issuer_id) DO NOTHING",
                (ecard_id, issuer_id, now),
            )
            self._audit(cur, now, "ECARD_ISSUED", f"channel:{issuer_id}", ecard_id, "")
            return self._locked_card(cur, card_no)  # type: ignore[return-value]

    def set_card_status(self, card_no: str, status: int, actor: str, now: int) -> Card:
        with self.transaction() as cur:
            cur.execute("UPDATE cards SET status = ? WHERE card_no = ?", (status, card_no))
            card = self._locked_card(cur, card_no)
            if card is None:
                raise LookupError(card_no)
            self._audit(cur, now, "CARD_STATUS", actor, card.ecard_id or "", str(status))
            return card

    def credit(self, card_no: str, amount_fen: int, idempotency_key: str, request_hash: bytes, now: int) -> Card:
        """Adds money to a personal account once per idempotency key (a ledger row and the balance)."""
        try:
            return self._credit(card_no, amount_fen, idempotency_key, request_hash, now)
        except self.unique_errors:
            # A concurrent credit under the same key committed first (PostgreSQL): answer as a repeat.
            return self._credit(card_no, amount_fen, idempotency_key, request_hash, now)

    def _credit(self, card_no: str, amount_fen: int, idempotency_key: str, request_hash: bytes, now: int) -> Card:
        with self.transaction() as cur:
            cur.execute("SELECT request_hash FROM credits WHERE idempotency_key = ?", (idempotency_key,))
            seen = cur.fetchone()
            if seen is not None:
                if bytes(seen[0]) != request_hash:
                    raise AlreadyExists("idempotency key was used for another credit", "IDEMPOTENCY_KEY_REUSED")
                card = self._locked_card(cur, card_no)
                if card is None:
                    raise LookupError(card_no)
                return card
            card = self._locked_card(cur, card_no)
            if card is None:
                raise LookupError(card_no)
            balance = card.balance_fen + amount_fen
            cur.execute("UPDATE cards SET balance_fen = ? WHERE card_no = ?", (balance, card_no))
            cur.execute(
                "INSERT INTO ledger (card_no, delta_fen, balance_after_fen, kind, ref, created_at) "
                "VALUES (?, ?, ?, 'CREDIT', ?, ?)",
                (card_no, amount_fen, balance, idempotency_key, now),
            )
            cur.execute(
                "INSERT INTO credits (idempotency_key, request_hash, card_no, amount_fen, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (idempotency_key, request_hash, card_no, amount_fen, now),
            )
            self._audit(cur, now, "ACCOUNT_CREDIT", "admin", card.ecard_id or "", str(amount_fen))
            return self._locked_card(cur, card_no)  # type: ignore[return-value]

    def ledger_total(self, card_no: str) -> int:
        """Sum of the card's ledger rows: always equal to its balance."""
        return int(self.rows("SELECT COALESCE(SUM(delta_fen), 0) FROM ledger WHERE card_no = ?", (card_no,))[0][0])

    # -- audit ------------------------------------------------------------------------------------
    @staticmethod
    def _audit(cur: Cursor, at: int, kind: str, actor: str, subject: str, detail: str) -> None:
        cur.execute(
            "INSERT INTO audit (at, kind, actor, subject, detail) VALUES (?, ?, ?, ?, ?)",
            (at, kind, actor, subject, detail),
        )

    def append_audit(self, events: Sequence[tuple[int, str, str, str, str]]) -> None:
        """Writes a batch of (at, kind, actor, subject, detail) rows."""
        if events:
            with self.transaction() as cur:
                cur.executemany("INSERT INTO audit (at, kind, actor, subject, detail) VALUES (?, ?, ?, ?, ?)", events)

    def audit_events(self, kind: str | None = None) -> list[tuple[Any, ...]]:
        if kind is None:
            return self.rows("SELECT at, kind, actor, subject, detail FROM audit ORDER BY event_id")
        return self.rows("SELECT at, kind, actor, subject, detail FROM audit WHERE kind = ? ORDER BY event_id", (kind,))

    # -- settlements ------------------------------------------------------------------------------
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
            found = self.rows(sql, params)
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
        if bytes(row[-1]) != request_hash:
            raise AlreadyExists(f"idempotency_key was used for another {what}", "IDEMPOTENCY_KEY_REUSED")
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
            with self.transaction() as cur:
                return self._settle(cur, draft, now)
        except self.unique_errors:
            # A concurrent duplicate committed first (possible on PostgreSQL): answer with its record.
            row = self._select_settlement(
                None, "WHERE s.merchant_id = ? AND s.idempotency_key = ?", (draft.merchant_id, draft.idempotency_key)
            )
            record = self._first_answer(row, draft.request_hash, "settlement")
            if record is None:
                raise
            return record

    def _settle(self, cur: Cursor, draft: Draft, now: int) -> SettlementRecord:
        cur.execute(f"SELECT card_no, status, balance_fen FROM cards WHERE ecard_id = ?{self.for_update}",
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
        if card is None:
            raise FailedPrecondition("no such e-card", "CARD_UNKNOWN")
        cur.execute("SELECT 1 FROM settlements WHERE ecard_id = ? AND verification_nonce = ?",
                    (draft.ecard_id, draft.verification_nonce))
        if cur.fetchone() is not None:
            raise FailedPrecondition("this verification has already been used to settle", draft.used_reason)
        card_no, status, balance = card[0], card[1], card[2]
        if status != ACTIVE:
            word = "CARD_LOST" if status == LOST else "CARD_CANCELLED"
            raise FailedPrecondition("the card is not active", word)
        shares = draft.shares(balance)
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
        self._audit(cur, now, "SETTLE", f"merchant:{draft.merchant_id}", draft.ecard_id,
                    f"{draft.settlement_id} total={draft.split.total_fen} fund={shares.fund_fen} "
                    f"account={shares.account_fen} self_pay={shares.self_pay_fen}")
        return SettlementRecord(draft.settlement_id, draft.ecard_id, draft.merchant_id, SETTLED,
                                draft.split.total_fen, shares.fund_fen, shares.account_fen, shares.self_pay_fen,
                                after, draft.items, now, None)

    def refund(self, draft: RefundDraft, now: int) -> SettlementRecord:
        """Undoes a settlement once: the account and the fund get back exactly what it took."""
        try:
            with self.transaction() as cur:
                return self._refund(cur, draft, now)
        except self.unique_errors:
            record = self._refund_answer(None, draft)
            if record is None:
                raise
            return record

    def _refund_answer(self, cur: Cursor | None, draft: RefundDraft) -> SettlementRecord | None:
        sql = "SELECT settlement_id, request_hash FROM refunds WHERE merchant_id = ? AND idempotency_key = ?"
        params = (draft.merchant_id, draft.idempotency_key)
        if cur is None:
            found = self.rows(sql, params)
            seen = found[0] if found else None
        else:
            cur.execute(sql, params)
            seen = cur.fetchone()
        if seen is None:
            return None
        if bytes(seen[1]) != draft.request_hash:
            raise AlreadyExists("idempotency_key was used for another refund", "IDEMPOTENCY_KEY_REUSED")
        row = self._select_settlement(cur, "WHERE s.settlement_id = ?", (seen[0],))
        return None if row is None else self._settlement(row)

    def _refund(self, cur: Cursor, draft: RefundDraft, now: int) -> SettlementRecord:
        cur.execute("SELECT card_no, merchant_id FROM settlements WHERE settlement_id = ?", (draft.settlement_id,))
        found = cur.fetchone()
        if found is None:
            self._refund_answer(cur, draft)  # raises when the key served a refund of another settlement
            raise NotFound("no such settlement", "SETTLEMENT_UNKNOWN")
        card_no, owner = found
        if owner != draft.merchant_id:
            raise PermissionDenied("only the settling merchant may refund", "SETTLEMENT_NOT_YOURS")
        cur.execute(f"SELECT balance_fen FROM cards WHERE card_no = ?{self.for_update}", (card_no,))
        card = cur.fetchone()
        earlier = self._refund_answer(cur, draft)
        if earlier is not None:
            return earlier
        cur.execute(
            f"SELECT status, account_fen, fund_fen, ecard_id FROM settlements WHERE settlement_id = ?{self.for_update}",
            (draft.settlement_id,),
        )
        status, account, fund, ecard_id = cur.fetchone()
        if status == REFUNDED:
            raise FailedPrecondition("the settlement is already refunded", "ALREADY_REFUNDED")
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
        self._audit(cur, now, "REFUND", f"merchant:{draft.merchant_id}", ecard_id,
                    f"{draft.settlement_id} account={account} fund={fund}")
        row = self._select_settlement(cur, "WHERE s.settlement_id = ?", (draft.settlement_id,))
        return self._settlement(row)  # type: ignore[arg-type]

    def fund_ledger_total(self, settlement_id: str) -> int:
        """What the fund has paid for a settlement, net of refunds."""
        return int(self.rows("SELECT COALESCE(SUM(delta_fen), 0) FROM fund_ledger WHERE settlement_id = ?",
                             (settlement_id,))[0][0])
