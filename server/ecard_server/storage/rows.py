"""What the SQL store and its ledger share: the cursor they write through, multi-row inserts, audit rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from ecard_server.core.records import AuditEvent, Card

T = TypeVar("T")
_ROWS_PER_INSERT = 100


class Cursor(Protocol):
    """The slice of a DB-API cursor that the store uses, with `?` placeholders on every backend."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class EventWriter(Protocol):
    """The slice of the channels' outbox (storage.outbox.Outbox) that a transaction writes through."""

    def write(self, cur: Cursor, ecard_id: str, kind: str, detail: dict[str, Any], now: int, *,
              also: Sequence[str] = (), bound: bool = True, channels: Sequence[str] | None = None) -> None: ...


class Transactions(Protocol):
    """What the ledger needs of the store that owns it."""

    @property
    def for_update(self) -> str: ...  # the row lock suffix inside a transaction, where the backend has one
    @property
    def unique_errors(self) -> tuple[type[BaseException], ...]: ...
    @property
    def writes_in_with(self) -> bool: ...  # a WITH clause may hold an INSERT ... RETURNING (PostgreSQL)
    @property
    def numbers_after_commit(self) -> bool: ...  # channel events are numbered once committed (storage.outbox)
    def transaction(self, *, pipelined: bool = False) -> AbstractContextManager[Cursor]: ...
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def once_more_on_conflict(self, write: Callable[[], T]) -> T: ...
    def locked_card(self, cur: Cursor, card_no: str) -> Card | None: ...
    @property
    def outbox(self) -> EventWriter: ...
    def lock_key(self, cur: Cursor, *parts: str) -> None: ...  # a lock on a name, until the transaction ends
    def select_locked_under_key(self, cur: Cursor, parts: Sequence[str], sql: str, params: Sequence[Any]) -> None: ...
    def writes(self, cur: Cursor) -> AbstractContextManager[Cursor]: ...  # writes sent as one statement (SqlStore)
    def in_turn(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None: ...  # one transaction (SqlStore)
    @property
    def aggregate_text(self) -> str: ...  # the SQL aggregate joining texts with a separator


def insert_rows(cur: Cursor, head: str, values: str, rows: Sequence[Sequence[Any]]) -> None:
    """INSERT of many rows, up to _ROWS_PER_INSERT per statement: about half the cost per row of
    executemany on SQLite (one statement, one sqlite_sequence update, per hundred rows)."""
    full = len(rows) - len(rows) % _ROWS_PER_INSERT
    if full:
        sql = head + ", ".join([values] * _ROWS_PER_INSERT)
        cur.executemany(
            sql, [[v for row in rows[i : i + _ROWS_PER_INSERT] for v in row] for i in range(0, full, _ROWS_PER_INSERT)]
        )
    if full < len(rows):
        rest = rows[full:]
        cur.execute(head + ", ".join([values] * len(rest)), [v for row in rest for v in row])


AUDIT_COLUMNS = "audit (at, kind, actor, subject, detail)"
"""The audit table and the columns of an AuditEvent, in its order."""
_AUDIT_HEAD = f"INSERT INTO {AUDIT_COLUMNS} VALUES "
_AUDIT_VALUES = "(?, ?, ?, ?, ?)"


def write_audit(cur: Cursor, *events: AuditEvent) -> None:
    """Audit rows inside the caller's transaction (the core composed them: core.audit)."""
    insert_rows(cur, _AUDIT_HEAD, _AUDIT_VALUES, events)
