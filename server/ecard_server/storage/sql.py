"""SqlStore: the core's storage interfaces (core.ports) in portable SQL, for SQLite and PostgreSQL.

The store answers reads and writes of issuers, keys, merchants, cards and the audit table; its
ledger (`store.ledger`, storage.ledger.SqlLedger) moves money on the same transactions. A backend
subclass supplies connections (`_transaction`, `_rows`), the dialect words of the migrations,
whether its reads stay on this host (`local`), and which driver errors mean "the store is down"
(-> ecard.errors.Unavailable, so callers fail closed) or "a unique key was taken".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cached_property
from typing import Any, ClassVar, TypeVar

from ecard.errors import AlreadyExists, Unavailable
from ecard_server.core import audit
from ecard_server.core.records import (
    ACTIVE,
    BINDING,
    CARD_STATUS,
    NO_CATALOGUE,
    RESUME,
    SUSPEND,
    UNBIND,
    AuditEvent,
    AuditQuery,
    Card,
    Catalogue,
    CatalogueItem,
    CounterBinding,
    DeniedCertificate,
    EnrollRow,
    Issuer,
    IssuerKey,
    Merchant,
    StoredAuditEvent,
)
from ecard_server.core.rules.benefits import DEFAULT_CATEGORY, NO_POLICY, BenefitPolicy, parse_policy
from ecard_server.core.rules.counter import check_completion
from ecard_server.storage import mapper
from ecard_server.storage.ledger import SqlLedger, catalogue_version
from ecard_server.storage.migrations import MIGRATIONS
from ecard_server.storage.outbox import Outbox
from ecard_server.storage.rows import Cursor, insert_rows, write_audit
from ecard_server.storage.statements import SqlStatements
from ecard_server.storage.usage import UsageHistory
from ecard_server.storage.visits import SqlVisits

T = TypeVar("T")
_CARD_COLUMNS = mapper.CARD.select
_KEY_COLUMNS = mapper.KEY.select


class _Refused(Exception):
    def __init__(self, wait: int) -> None:
        self.wait = wait


class SqlStore:
    backend: ClassVar[str] = ""  # "sqlite" or "postgresql": a migration statement may be for one only
    local = False  # every read stays on this host (core.ports.Store.local)
    dialect: ClassVar[dict[str, str]] = {}
    for_update = ""  # row lock suffix inside a transaction, where the backend has one
    writes_in_with = False  # a WITH clause may hold an INSERT ... RETURNING (a data-modifying CTE)
    aggregate_text = "group_concat"  # (expression, separator) -> the texts joined: SQLite's; PostgreSQL's string_agg
    numbers_after_commit = False  # channel events are numbered once committed, not by their writer (outbox)
    transient_errors: tuple[type[BaseException], ...] = ()
    unique_errors: tuple[type[BaseException], ...] = ()
    url = ""

    # -- what a backend provides ------------------------------------------------------------------
    def _transaction(self, *, pipelined: bool = False) -> AbstractContextManager[Cursor]:
        """A cursor inside one write transaction: committed on exit, rolled back on error. `pipelined`:
        statements whose rows are not read may be sent ahead of their answers (a server over the
        network: fewer round trips; their errors surface at the next read or at the commit)."""
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

    def lock_key(self, cur: Cursor, *parts: str) -> None:
        """Holds a lock on the name `parts` until the transaction ends, where write transactions do not
        already run one at a time (SQLite's do: BEGIN IMMEDIATE)."""

    def select_locked_under_key(self, cur: Cursor, parts: Sequence[str], sql: str, params: Sequence[Any]) -> None:
        """`lock_key(*parts)`, then `sql` (a SELECT ending in its WHERE) with the row lock suffix: in one
        statement where the backend can (PostgreSQL: one round trip, not two)."""
        self.lock_key(cur, *parts)
        cur.execute(sql + self.for_update, params)

    def writes(self, cur: Cursor) -> AbstractContextManager[Cursor]:
        """Writes sent as one statement where the backend can (PostgreSQL: a data-modifying WITH), at
        the block's end; here `cur` itself. For writes whose rows nobody reads, that neither read nor
        touch what another of them writes (one statement has one snapshot), and that nothing else the
        transaction runs before the block ends depends on."""
        return nullcontext(cur)

    def in_turn(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """The statements (writes nothing reads back), one after another in one transaction, each seeing
        what committed before it started where the backend gives each statement a snapshot of its own
        (PostgreSQL): in one message there."""
        with self.transaction() as cur:
            for sql, params in statements:
                cur.execute(sql, params)

    def close(self) -> None:
        raise NotImplementedError

    # -- plumbing ---------------------------------------------------------------------------------
    @cached_property
    def ledger(self) -> SqlLedger:
        """Credits, settlements and refunds, on this store's transactions."""
        return SqlLedger(self)

    @cached_property
    def usage(self) -> UsageHistory:
        """E-cards' usage histories, read from the audit trail and the settlement tables."""
        return UsageHistory(self)

    @cached_property
    def outbox(self) -> Outbox:
        """The channels' events, written on this store's transactions."""
        return Outbox(self)

    @cached_property
    def visits(self) -> SqlVisits:
        """Hospital visits, on this store's transactions."""
        return SqlVisits(self)

    @cached_property
    def statements(self) -> SqlStatements:
        """Reconciliation reads: settlement pages and a day's sums."""
        return SqlStatements(self, self.ledger)

    @contextmanager
    def transaction(self, *, pipelined: bool = False) -> Iterator[Cursor]:
        with self.outbox.collecting():
            try:
                with self._transaction(pipelined=pipelined) as cur:
                    yield cur
            except self.transient_errors as exc:
                raise Unavailable(f"database unavailable: {type(exc).__name__}", "STORE_UNAVAILABLE") from exc

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._rows(sql, params)
        except self.transient_errors as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}", "STORE_UNAVAILABLE") from exc

    def once_more_on_conflict(self, write: Callable[[], T]) -> T:
        """Runs a check-then-insert write; if a concurrent writer took the same unique key between our
        check and our insert (possible on PostgreSQL), runs it once more: it then sees that row."""
        try:
            return write()
        except self.unique_errors:
            return write()

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

    # -- meta: small named values of the deployment (never a secret: ecard_server.keyring) ----------
    def meta_value(self, name: str) -> bytes | None:
        found = self.rows("SELECT value FROM meta WHERE name = ?", (name,))
        return bytes(found[0][0]) if found else None

    def set_meta_value(self, name: str, value: bytes) -> None:
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def claim_meta_value(self, name: str, value: bytes, first: Callable[[], None]) -> bool:
        """Writes `value` under `name` unless a value is there; if this call writes it, `first()` runs
        inside the same transaction, before the commit (an error in it writes nothing). A concurrent
        claimer waits for that commit and then finds the value. True if this call wrote it."""
        with self.transaction() as cur:
            cur.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING RETURNING name",
                        (name, value))
            if cur.fetchone() is None:
                return False
            first()
            return True

    def scrub_meta_value(self, name: str) -> None:
        """Deletes a value so that its bytes are not left behind in the database's files either."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM meta WHERE name = ?", (name,))

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
        found = self.rows(f"SELECT {mapper.ISSUER.select} FROM issuers WHERE issuer_id = ?",
                          (issuer_id,))
        return mapper.issuer(found[0]) if found else None

    def list_issuer_ids(self) -> list[str]:
        return [row[0] for row in self.rows("SELECT issuer_id FROM issuers")]

    def list_issuers(self) -> list[Issuer]:
        return [mapper.issuer(row) for row in self.rows(f"SELECT {mapper.ISSUER.select} FROM issuers")]

    def disable_issuer(self, issuer_id: str, now: int, event: Callable[[int], AuditEvent]) -> Issuer | None:
        """Disables the issuer (once: a second call keeps the first time) and revokes every key of it, in
        one transaction with `event(keys revoked)`; None for an unknown issuer."""
        with self.transaction() as cur:
            cur.execute("UPDATE issuers SET disabled_at = ? WHERE issuer_id = ? AND disabled_at IS NULL "
                        "RETURNING issuer_id", (now, issuer_id))
            newly = cur.fetchone() is not None
            cur.execute("UPDATE issuer_keys SET revoked = ? WHERE issuer_id = ? AND NOT revoked RETURNING kid",
                        (True, issuer_id))
            revoked = len(cur.fetchall())
            if newly:
                write_audit(cur, event(revoked))
            cur.execute(f"SELECT {mapper.ISSUER.select} FROM issuers WHERE issuer_id = ?", (issuer_id,))
            row = cur.fetchone()
            return mapper.issuer(row) if row is not None else None

    # -- the deny list of client certificates -----------------------------------------------------
    def deny_certificate(self, denied: DeniedCertificate, event: AuditEvent) -> DeniedCertificate:
        """Adds a fingerprint to the deny list (a repeat keeps the first entry and records nothing)."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO denied_certificates (fingerprint, reason, denied_by, denied_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (fingerprint) DO NOTHING RETURNING fingerprint",
                (denied.fingerprint, denied.reason, denied.denied_by, denied.denied_at),
            )
            if cur.fetchone() is not None:
                write_audit(cur, event)
            cur.execute(f"SELECT {mapper.DENIED.select} FROM denied_certificates WHERE fingerprint = ?",
                        (denied.fingerprint,))
            return mapper.denied_certificate(cur.fetchone())

    def allow_certificate(self, fingerprint: str, event: AuditEvent) -> DeniedCertificate | None:
        """Takes a fingerprint off the deny list; the entry it had, or None if it had none."""
        with self.transaction() as cur:
            cur.execute(f"DELETE FROM denied_certificates WHERE fingerprint = ? RETURNING {mapper.DENIED.select}",
                        (fingerprint,))
            row = cur.fetchone()
            if row is not None:
                write_audit(cur, event)
            return mapper.denied_certificate(row) if row is not None else None

    def list_denied_certificates(self) -> list[DeniedCertificate]:
        rows = self.rows(f"SELECT {mapper.DENIED.select} FROM denied_certificates ORDER BY denied_at, fingerprint")
        return [mapper.denied_certificate(row) for row in rows]

    def get_key(self, issuer_id: str, kid: str) -> IssuerKey | None:
        found = self.rows(
            f"SELECT {_KEY_COLUMNS} FROM issuer_keys WHERE issuer_id = ? AND kid = ?", (issuer_id, kid)
        )
        return mapper.issuer_key(found[0]) if found else None

    def list_keys(self, issuer_id: str | None = None) -> list[IssuerKey]:
        if issuer_id is None:
            found = self.rows(f"SELECT {_KEY_COLUMNS} FROM issuer_keys ORDER BY issuer_id, created_at, kid")
        else:
            found = self.rows(
                f"SELECT {_KEY_COLUMNS} FROM issuer_keys WHERE issuer_id = ? ORDER BY created_at, kid", (issuer_id,)
            )
        return [mapper.issuer_key(row) for row in found]

    def register_key(self, key: IssuerKey, now: int, *events: AuditEvent) -> IssuerKey:
        return self.once_more_on_conflict(lambda: self._register_key(key, now, events))

    def _register_key(self, key: IssuerKey, now: int, events: Sequence[AuditEvent]) -> IssuerKey:
        """Adds a key; the same key again updates its validity window; another key under a taken kid
        is AlreadyExists. Revocation is never undone here. `events` are written with the change."""
        with self.transaction() as cur:
            write_audit(cur, *events)
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
            existing = mapper.issuer_key(row)
            if existing.public_key_pem.strip() != key.public_key_pem.strip():
                raise AlreadyExists(f"kid {key.kid} is taken by another key", "KID_IN_USE")
            cur.execute(
                "UPDATE issuer_keys SET not_before = ?, not_after = ? WHERE issuer_id = ? AND kid = ?",
                (key.not_before, key.not_after, key.issuer_id, key.kid),
            )
            return IssuerKey(existing.issuer_id, existing.kid, existing.algorithm, existing.public_key_pem,
                             key.not_before, key.not_after, existing.revoked)

    def revoke_key(self, issuer_id: str, kid: str, *events: AuditEvent) -> IssuerKey | None:
        """Revokes a key, with `events` (if it exists); None for an unknown key."""
        with self.transaction() as cur:
            cur.execute("UPDATE issuer_keys SET revoked = ? WHERE issuer_id = ? AND kid = ? RETURNING kid",
                        (True, issuer_id, kid))
            if cur.fetchone() is not None:
                write_audit(cur, *events)
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
            write_audit(cur, audit.merchant_changed(now, m.merchant_id, m.kind, m.designated))
        return m

    def list_merchants(self) -> list[Merchant]:
        return [
            mapper.merchant(row) for row in self.rows(f"SELECT {mapper.MERCHANT.select} FROM merchants")
        ]

    # -- cards ------------------------------------------------------------------------------------
    # -- catalogue --------------------------------------------------------------------------------
    def import_catalogue(self, items: Sequence[CatalogueItem], now: int) -> str:
        """Writes a whole new catalogue version and its audit record in one transaction; returns the
        version (now the current one)."""
        with self.transaction() as cur:
            cur.execute("INSERT INTO catalogue_versions (items, imported_at) VALUES (?, ?) RETURNING version",
                        (len(items), now))
            version = int(cur.fetchone()[0])
            insert_rows(
                cur,
                "INSERT INTO catalogue_items (version, code, name, drug_class, price_limit_fen, valid_from, "
                "valid_to) VALUES ",
                "(?, ?, ?, ?, ?, ?, ?)",
                [(version, i.code, i.name, i.drug_class, i.price_limit_fen, i.valid_from, i.valid_to) for i in items],
            )
            write_audit(cur, audit.catalogue_imported(now, str(version), len(items)))
        return str(version)

    def import_policy(self, name: str, body: str, now: int) -> str:
        with self.transaction() as cur:
            cur.execute("INSERT INTO benefit_policies (name, body, imported_at) VALUES (?, ?, ?) RETURNING version",
                        (name, body, now))
            version = f"b{int(cur.fetchone()[0])}"
            write_audit(cur, audit.policy_imported(now, version, name))
        return version

    def current_policy(self) -> BenefitPolicy:
        found = self.rows("SELECT version, body FROM benefit_policies ORDER BY version DESC LIMIT 1")
        if not found:
            return NO_POLICY
        name, benefits = parse_policy(found[0][1])
        return BenefitPolicy(f"b{found[0][0]}", name, benefits)

    def current_catalogue(self) -> Catalogue:
        with self.transaction() as cur:  # the version and its items from one snapshot
            version = catalogue_version(cur)
            if not version:
                return NO_CATALOGUE
            cur.execute(f"SELECT {mapper.CATALOGUE_ITEM.select} FROM catalogue_items WHERE version = ?",
                        (int(version),))
            items = [mapper.catalogue_item(row) for row in cur.fetchall()]
            return Catalogue(version, {item.code: item for item in items})

    def enroll(self, rows: Sequence[EnrollRow], now: int) -> tuple[int, int]:
        return self.once_more_on_conflict(lambda: self._enroll(rows, now))

    def _enroll(self, rows: Sequence[EnrollRow], now: int) -> tuple[int, int]:
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
                insert_rows(
                    cur,
                    "INSERT INTO cards (card_no, holder_name, id_hash, region, status, balance_fen, enrolled_at, "
                    "holder_sealed, person_category) VALUES ",
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(r.card_no, r.holder_name, r.id_hash, r.region, ACTIVE, r.opening_balance_fen, now, True,
                      r.person_category or DEFAULT_CATEGORY)
                     for r in fresh],
                )
                opening = [r for r in fresh if r.opening_balance_fen]
                if opening:
                    insert_rows(
                        cur,
                        "INSERT INTO ledger (card_no, delta_fen, balance_after_fen, kind, ref, created_at) VALUES ",
                        "(?, ?, ?, 'OPENING', '', ?)",
                        [(r.card_no, r.opening_balance_fen, r.opening_balance_fen, now) for r in opening],
                    )
            if known:
                cur.executemany(
                    "UPDATE cards SET holder_name = ?, id_hash = ?, region = ?, holder_sealed = TRUE, "
                    "person_category = CASE WHEN ? = '' THEN person_category ELSE ? END WHERE card_no = ?",
                    [(latest[n].holder_name, latest[n].id_hash, latest[n].region, latest[n].person_category,
                      latest[n].person_category, n) for n in numbers if n in known],
                )
        return len(fresh), len(known)

    def _card_from(self, cur: Cursor | None, row: Sequence[Any] | None) -> Card | None:
        """The card of a row of _CARD_COLUMNS, with its channel bindings (read on `cur` when given)."""
        if row is None:
            return None
        ecard_id = mapper.CARD.named(row)["ecard_id"]
        bindings: list[Any] = []
        if ecard_id:
            sql = f"SELECT {mapper.BINDING.select} FROM ecard_channels WHERE ecard_id = ? ORDER BY bound_at, issuer_id"
            if cur is None:
                bindings = self.rows(sql, (ecard_id,))
            else:
                cur.execute(sql, (ecard_id,))
                bindings = cur.fetchall()
        return mapper.card(row, bindings)

    def get_card(self, *, card_no: str | None = None, ecard_id: str | None = None) -> Card | None:
        if card_no is not None:
            found = self.rows(f"SELECT {_CARD_COLUMNS} FROM cards WHERE card_no = ?", (card_no,))
        else:
            found = self.rows(f"SELECT {_CARD_COLUMNS} FROM cards WHERE ecard_id = ?", (ecard_id,))
        return self._card_from(None, found[0] if found else None)

    def locked_card(self, cur: Cursor, card_no: str) -> Card | None:
        """The card, its row locked until the transaction ends (where the backend locks rows)."""
        cur.execute(f"SELECT {_CARD_COLUMNS} FROM cards WHERE card_no = ?{self.for_update}", (card_no,))
        return self._card_from(cur, cur.fetchone())

    def bind_ecard(
        self, card_no: str, issuer_id: str, new_ecard_id: str, now: int, statement: bytes = b"", vouched: str = "",
        counter_code: str = "",
    ) -> Card:
        """Gives the card its e-card (once, for life: `new_ecard_id` is used only if it has none yet)
        and binds the channel, keeping the signed `statement` it was bound on; the audit row says
        whether the channel is new to the card, beside which channels were bound already. With
        `counter_code`, completes that counter binding in the same transaction (or refuses it all)."""
        with self.transaction() as cur:
            card = self.locked_card(cur, card_no)
            if card is None:
                raise LookupError(card_no)
            ecard_id = card.ecard_id
            if counter_code:
                self._complete_counter_binding(cur, counter_code, ecard_id or new_ecard_id, issuer_id, now)
            if ecard_id is None:
                ecard_id = new_ecard_id
                cur.execute("UPDATE cards SET ecard_id = ?, issued_at = ? WHERE card_no = ?", (ecard_id, now, card_no))
            new_binding = issuer_id not in card.channels
            if new_binding:
                cur.execute(
                    "INSERT INTO ecard_channels (ecard_id, issuer_id, bound_at, assurance_statement) "
                    "VALUES (?, ?, ?, ?)",
                    (ecard_id, issuer_id, now, statement or None),
                )
            write_audit(cur, audit.ecard_issued(now, issuer_id, ecard_id, new_binding, card.channels, vouched))
            after = self.locked_card(cur, card_no)
            if new_binding:
                self.outbox.write(cur, ecard_id, BINDING, {"issuer_id": issuer_id, "state": "ACTIVE"}, now)
            return after  # type: ignore[return-value]

    def _complete_counter_binding(self, cur: Cursor, code: str, ecard_id: str, issuer_id: str, now: int) -> None:
        cur.execute(f"SELECT {mapper.COUNTER.select} FROM counter_bindings WHERE code = ?{self.for_update}", (code,))
        row = cur.fetchone()
        binding = mapper.counter_binding(row) if row is not None else None
        if check_completion(binding, ecard_id, issuer_id, now):
            assert binding is not None
            cur.execute("UPDATE counter_bindings SET ecard_id = ?, issuer_id = ?, completed_at = ? WHERE code = ?",
                        (ecard_id, issuer_id, now, code))
            write_audit(cur, audit.counter_binding_completed(now, issuer_id, ecard_id, code, binding.merchant_id))

    def start_counter_binding(self, binding: CounterBinding, event: AuditEvent) -> None:
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO counter_bindings (code, merchant_id, terminal_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (binding.code, binding.merchant_id, binding.terminal_id, binding.created_at, binding.expires_at),
            )
            write_audit(cur, event)

    def prune_counter_bindings(self, expired_before: int) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM counter_bindings WHERE expires_at < ?", (expired_before,))

    def get_counter_binding(self, code: str) -> CounterBinding | None:
        found = self.rows(f"SELECT {mapper.COUNTER.select} FROM counter_bindings WHERE code = ?", (code,))
        return mapper.counter_binding(found[0]) if found else None

    def charge_issue_attempt(self, scopes: Sequence[tuple[str, int]], window_s: int, now: int) -> int:
        """Counts one issuance attempt against each (scope, limit), in one transaction; a scope's window
        starts at its first attempt and lasts `window_s`. Returns 0 when every scope is within its
        limit, else the seconds until the fullest scope's window ends (and counts nothing)."""
        try:
            with self.transaction() as cur:
                self._charge(cur, scopes, window_s, now)
        except _Refused as refused:  # rolled back: a refused attempt counts nothing
            return refused.wait
        return 0

    @staticmethod
    def _charge(cur: Cursor, scopes: Sequence[tuple[str, int]], window_s: int, now: int) -> None:
        wait = 0
        for scope, limit in scopes:
            cur.execute(
                "INSERT INTO issue_attempts (scope, window_start, attempts) VALUES (?, ?, 1) "
                "ON CONFLICT (scope) DO UPDATE SET "
                "attempts = CASE WHEN issue_attempts.window_start <= ? THEN 1 ELSE issue_attempts.attempts + 1 END, "
                "window_start = CASE WHEN issue_attempts.window_start <= ? THEN ? ELSE issue_attempts.window_start END "
                "RETURNING attempts, window_start",
                (scope, now, now - window_s, now - window_s, now),
            )
            attempts, start = cur.fetchone()
            if attempts > limit:
                wait = max(wait, int(start) + window_s - now, 1)
        if wait:
            raise _Refused(wait)

    def refund_issue_attempt(self, scopes: Sequence[str]) -> None:
        """Gives back an attempt `charge_issue_attempt` counted (it succeeded: only failures count)."""
        with self.transaction() as cur:
            for scope in scopes:
                cur.execute("UPDATE issue_attempts SET attempts = attempts - 1 WHERE scope = ? AND attempts > 0",
                            (scope,))

    def set_card_status(self, card_no: str, status: int, actor: str, now: int) -> Card:
        with self.transaction() as cur:
            cur.execute("UPDATE cards SET status = ? WHERE card_no = ?", (status, card_no))
            card = self.locked_card(cur, card_no)
            if card is None:
                raise LookupError(card_no)
            write_audit(cur, audit.card_status(now, actor, card.ecard_id or "", status))
            if card.ecard_id:
                self.outbox.write(cur, card.ecard_id, CARD_STATUS, {"status": status}, now)
            return card

    def change_binding(self, ecard_id: str, issuer_id: str, change: str, event: AuditEvent) -> tuple[Card | None, bool]:
        """SUSPEND, RESUME or UNBIND one channel's binding, with its audit row if it changed anything.
        Returns the card after it (None: no such e-card) and whether anything changed."""
        now = event.at
        with self.transaction() as cur:
            if change == UNBIND:  # the ended binding, with the signed statement it was made on, is kept
                cur.execute(
                    "INSERT INTO ecard_bindings_ended (ecard_id, issuer_id, bound_at, ended_at, assurance_statement) "
                    "SELECT ecard_id, issuer_id, bound_at, ?, assurance_statement FROM ecard_channels "
                    "WHERE ecard_id = ? AND issuer_id = ?", (now, ecard_id, issuer_id))
                cur.execute("DELETE FROM ecard_channels WHERE ecard_id = ? AND issuer_id = ? RETURNING issuer_id",
                            (ecard_id, issuer_id))
            elif change == SUSPEND:
                cur.execute("UPDATE ecard_channels SET suspended_at = ? WHERE ecard_id = ? AND issuer_id = ? "
                            "AND suspended_at IS NULL RETURNING issuer_id", (now, ecard_id, issuer_id))
            elif change == RESUME:
                cur.execute("UPDATE ecard_channels SET suspended_at = NULL WHERE ecard_id = ? AND issuer_id = ? "
                            "AND suspended_at IS NOT NULL RETURNING issuer_id", (ecard_id, issuer_id))
            else:
                raise ValueError(change)
            changed = cur.fetchone() is not None
            if changed:
                write_audit(cur, event)
            cur.execute(f"SELECT {_CARD_COLUMNS} FROM cards WHERE ecard_id = ?{self.for_update}", (ecard_id,))
            card = self._card_from(cur, cur.fetchone())
            if changed:
                state = {SUSPEND: "SUSPENDED", RESUME: "ACTIVE", UNBIND: "UNBOUND"}[change]
                self.outbox.write(cur, ecard_id, BINDING, {"issuer_id": issuer_id, "state": state}, now,
                                  also=(issuer_id,))
            return card, changed

    def seal_holders(self, seal: Callable[[str, bytes], tuple[str, bytes]], chunk: int = 10_000) -> int:
        """Rows enrolled before holders were sealed: `seal(holder_name, id_hash)` gives the masked name
        and sealed hash they keep instead. Returns how many were sealed."""
        sealed = 0
        while True:
            with self.transaction() as cur:
                cur.execute(f"SELECT card_no, holder_name, id_hash FROM cards WHERE NOT holder_sealed LIMIT {chunk}")
                rows = cur.fetchall()
                if not rows:
                    return sealed
                cur.executemany(
                    "UPDATE cards SET holder_name = ?, id_hash = ?, holder_sealed = TRUE WHERE card_no = ?",
                    [(*seal(name, bytes(id_hash)), card_no) for card_no, name, id_hash in rows],
                )
            sealed += len(rows)

    # -- audit ------------------------------------------------------------------------------------
    def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Writes a batch of audit rows in one transaction."""
        if events:
            with self.transaction() as cur:
                write_audit(cur, *events)

    def audit_page(self, query: AuditQuery) -> list[StoredAuditEvent]:
        """Events matching `query`, oldest first, from after `query.after_id`, at most `query.limit`."""
        where: list[str] = ["event_id > ?"]
        params: list[Any] = [query.after_id]
        for column, value in (("kind", query.kind), ("actor", query.actor), ("subject", query.subject)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            where.append("at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("at < ?")
            params.append(query.until)
        rows = self.rows(
            f"SELECT {mapper.AUDIT.select} FROM audit WHERE {' AND '.join(where)} "
            f"ORDER BY event_id LIMIT {int(query.limit)}", params,
        )
        return [mapper.audit_event(row) for row in rows]

    def audit_events(self, kind: str | None = None) -> list[tuple[Any, ...]]:
        if kind is None:
            return self.rows("SELECT at, kind, actor, subject, detail FROM audit ORDER BY event_id")
        return self.rows("SELECT at, kind, actor, subject, detail FROM audit WHERE kind = ? ORDER BY event_id", (kind,))
