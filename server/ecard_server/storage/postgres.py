"""The shared deployment's store: PostgreSQL through psycopg 3 and a psycopg_pool connection pool.

SqlStore's queries are written once with `?` placeholders; they become psycopg's `%s` here. A store
that cannot reach PostgreSQL raises ecard.errors.Unavailable (callers fail closed) and heals by
itself: broken connections are dropped from the pool and replaced once the server answers again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, cast

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from ecard.errors import Unavailable
from ecard_server.core.records import AuditEvent
from ecard_server.storage.rows import AUDIT_COLUMNS
from ecard_server.storage.sql import SqlStore
from ecard_server.storage.urls import redacted

# The advisory lock that serialises `migrate` across processes starting together ("ecard" in ASCII).
MIGRATION_LOCK = 0x6563617264
# The advisory lock a `--single-instance` server holds for its life ("ecard1" in ASCII).
INSTANCE_LOCK = 0x656361726431
# libpq settings used unless the URL sets them: fail fast when the server is gone, notice dead peers.
CONNECT_DEFAULTS = {
    "connect_timeout": "3",
    "application_name": "ecard",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}
# How long a call waits for a connection while the database seems down (see PostgresStore).
SUSPECT_WAIT = 0.25

_PLACEHOLDER = re.compile(r"'[^']*'|\"[^\"]*\"|[?%]")


def _pyformat_token(match: re.Match[str]) -> str:
    text = match.group()
    if text == "?":
        return "%s"
    return text.replace("%", "%%")  # a literal % (alone or inside a quoted literal) is not a placeholder


@functools.lru_cache(maxsize=1024)
def pyformat(sql: str) -> str:
    """`?` placeholders (outside quoted literals) to psycopg's `%s`; a literal `%` doubled."""
    return _PLACEHOLDER.sub(_pyformat_token, sql)


def _key_number(parts: Sequence[str]) -> int:
    """The advisory lock of a name: 63 bits of its SHA-256."""
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big") >> 1


def describe(url: str) -> str:
    """host:port/dbname of a URL, for messages (never the password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "?"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


class _Unit:
    """The cursor of one unit of work (SqlStore's Cursor) with `?` placeholders. A pooled connection
    that turns out to be dead is swapped for another while nothing has been sent on it yet.

    A `pipelined` transaction runs in libpq's pipeline mode: BEGIN goes out with the first statement,
    and each statement whose rows are not read is sent without waiting for its answer, so a run of
    writes and the COMMIT after them cost one round trip. A write's error then surfaces at the next
    read or at the commit, inside the same transaction block, which still rolls back as a whole."""

    def __init__(self, store: PostgresStore, transaction: bool, pipelined: bool = False) -> None:
        self._store = store
        self._pool = store._pool
        self._transaction = transaction
        self._pipelined = pipelined and transaction
        self._pipeline: contextlib.ExitStack | None = None  # holds the connection's pipeline mode
        # One bound for the wait for a connection and for any replacement of it.
        self._deadline = time.monotonic() + (SUSPECT_WAIT if store._suspect else store._acquire_timeout)
        self._conn: psycopg.Connection[Any] | None = None
        self._sent = False  # something ran on this connection: it can no longer be swapped
        self._connect()

    def _connect(self) -> None:
        try:
            conn = self._pool.getconn(max(0.0, self._deadline - time.monotonic()))
        except PoolTimeout:
            self._store._suspect = True
            raise
        self._store._suspect = False
        self._conn, self._cur, self._sent = conn, conn.cursor(), False

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            with contextlib.suppress(psycopg.Error):
                pipeline.close()
        if conn is not None:
            self._cur.close()
            self._pool.putconn(conn)  # the pool drops a broken connection and makes a new one

    def _run(self, method: str, sql: str, params: Any) -> None:
        for _ in range(self._pool.max_size + 1):
            if self._conn is None:
                raise psycopg.OperationalError("no connection")
            fresh = not self._sent
            try:
                if fresh and self._pipelined:  # BEGIN and the first statement in one round trip
                    self._pipeline = contextlib.ExitStack()
                    pipeline = self._pipeline.enter_context(self._conn.pipeline())
                    self._sent = True
                    self._cur.execute("BEGIN")
                    self._send(method, pyformat(sql), params)
                    pipeline.sync()  # a dead connection shows here, while it can still be swapped
                    return
                if fresh and self._transaction:
                    self._cur.execute("BEGIN")
                self._sent = True
                self._send(method, pyformat(sql), params)
                return
            except psycopg.OperationalError:
                if not (fresh and self._conn.broken):
                    raise
                self._release()
                self._connect()
        raise psycopg.OperationalError("every pooled connection was broken")

    def _send(self, method: str, sql: str, params: Any) -> None:
        if method == "script":  # statements in one message: the simple query protocol, values bound here
            assert self._conn is not None
            psycopg.ClientCursor(self._conn).execute(sql, params)
        elif method == "copy":  # COPY ... FROM STDIN (never in pipeline mode): each row formatted by psycopg's C code
            with self._cur.copy(sql) as copy:
                for row in params:
                    copy.write_row(row)
        else:
            getattr(self._cur, method)(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Unit:
        self._run("execute", sql, tuple(params))
        return self

    def script(self, sql: str, params: Sequence[Any]) -> _Unit:
        """`sql`, statements joined by `;`, sent as one message (values bound client side)."""
        self._run("script", sql, tuple(params))
        return self

    def rollback_failed(self) -> None:
        """After a script failed inside its BEGIN: the transaction it left open rolled back."""
        conn = self._conn
        if conn is not None and not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")

    def copy_rows(self, table: str, rows: Sequence[Sequence[Any]]) -> _Unit:
        """`rows` into `table` ("name (columns)") by one COPY FROM STDIN."""
        self._run("copy", f"COPY {table} FROM STDIN", rows)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> _Unit:
        self._run("executemany", sql, [tuple(row) for row in rows])
        return self

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    def finish(self, commit: bool) -> None:
        """Commits or rolls back, and gives the connection back to the pool."""
        try:
            if self._transaction and self._sent and self._conn is not None:
                if self._pipeline is not None:
                    self._finish_pipeline(commit)
                else:
                    self._cur.execute("COMMIT" if commit else "ROLLBACK")
        except psycopg.Error:
            if commit:
                raise
        finally:
            self._release()


    def _finish_pipeline(self, commit: bool) -> None:
        """COMMIT sent after the unit's writes, then every answer awaited: the first error of any of
        them raises here, and the transaction is rolled back outside pipeline mode."""
        assert self._pipeline is not None and self._conn is not None
        pipeline, self._pipeline = self._pipeline, None
        try:
            if commit:
                self._cur.execute("COMMIT")
            pipeline.close()  # sends what is queued and reads every answer
        except psycopg.Error:
            if not self._conn.broken:
                with contextlib.suppress(psycopg.Error):
                    self._cur.execute("ROLLBACK")
            raise
        if not commit:
            self._cur.execute("ROLLBACK")


class _Writes:
    """The writes of a `PostgresStore.writes` block (SqlStore.writes), collected to go out as one statement."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Writes:
        self.statements.append((sql, tuple(params)))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> _Writes:
        for row in rows:
            self.execute(sql, row)
        return self

    def fetchone(self) -> Any:
        raise TypeError("writes sent as one statement read nothing back")

    def fetchall(self) -> list[Any]:
        raise TypeError("writes sent as one statement read nothing back")


class PostgresStore(SqlStore):
    backend = "postgresql"
    dialect: ClassVar[dict[str, str]] = {"blob": "BYTEA", "serial": "BIGSERIAL PRIMARY KEY"}
    for_update = " FOR UPDATE"
    writes_in_with = True
    # A channel's events are numbered after they commit (storage.outbox): no head row held by a Settle
    # through its commit, so settlements of cards bound to one channel commit side by side.
    numbers_after_commit = True
    aggregate_text = "string_agg"
    # OperationalError covers a refused or lost connection, an admin shutdown, serialization failures
    # and deadlocks, and the pool's PoolTimeout/PoolClosed (its subclasses): all "try again later".
    transient_errors = (psycopg.OperationalError,)
    unique_errors = (psycopg.errors.UniqueViolation,)

    def __init__(
        self, url: str, *, min_size: int = 2, max_size: int = 16, acquire_timeout: float = 2.0,
        reconnect_timeout: float = 2.0,
    ) -> None:
        """Opens a pool on `url` and migrates. `acquire_timeout` bounds the wait for a connection (so a
        call against a dead database answers UNAVAILABLE within it); once a wait has timed out, calls
        wait only `SUSPECT_WAIT` until one succeeds again. After `reconnect_timeout` of failed attempts
        the pool stops retrying in the background and reconnects on the next call."""
        self.url = url
        self._instance: psycopg.Connection[Any] | None = None  # holds INSTANCE_LOCK (hold_instance_lock)
        self._acquire_timeout = acquire_timeout
        self._suspect = False  # the last wait for a connection timed out: the database is probably down
        self._closed = threading.Event()
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            kwargs={**CONNECT_DEFAULTS, **self._url_settings(url), "autocommit": True},
            min_size=min_size,
            max_size=max_size,
            timeout=acquire_timeout,
            reconnect_timeout=reconnect_timeout,
            name="ecard",
            open=False,
        )
        self._pool.open(wait=False)
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _url_settings(url: str) -> dict[str, Any]:
        return {k: v for k, v in conninfo_to_dict(url).items() if k in CONNECT_DEFAULTS}

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """Checks the URL and that the database answers, then opens the store. ValueError (one line)
        for a malformed URL, an unreachable server, a missing database or refused credentials."""
        try:
            conninfo = make_conninfo(url, **{**CONNECT_DEFAULTS, **cls._url_settings(url)})
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"bad PostgreSQL URL: {redacted(_first_line(exc), url)}") from None
        try:
            psycopg.connect(conninfo).close()
        except psycopg.Error as exc:
            raise ValueError(
                f"cannot connect to PostgreSQL at {redacted(describe(url), url)}: {redacted(_first_line(exc), url)}"
            ) from None
        try:
            return cls(url)
        except (psycopg.Error, Unavailable) as exc:
            raise ValueError(
                f"cannot open PostgreSQL at {redacted(describe(url), url)}: {redacted(_first_line(exc), url)}"
            ) from None

    @contextmanager
    def _transaction(self, *, pipelined: bool = False) -> Iterator[Any]:
        unit = _Unit(self, transaction=True, pipelined=pipelined)
        try:
            yield unit
        except BaseException:
            unit.finish(commit=False)
            raise
        unit.finish(commit=True)

    def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Writes a batch of audit rows in one transaction, by COPY: psycopg formats each row in C, about a
        third of the CPU a row of the multi-row INSERTs (storage.rows) at the writer's usual batches
        (docs/performance.md, issue 18)."""
        if events:
            with self.transaction() as cur:
                cast(_Unit, cur).copy_rows(AUDIT_COLUMNS, events)

    def in_turn(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """One message (the simple query protocol, values bound client side): BEGIN, the statements,
        COMMIT. Each statement still takes its own snapshot (READ COMMITTED), and the message costs one
        psycopg call where a pipelined transaction of two statements costs four (about 60 k
        instructions each)."""
        sql = "; ".join(["BEGIN", *(statement for statement, _ in statements), "COMMIT"])
        try:
            unit = _Unit(self, transaction=False)
            try:
                unit.script(sql, [value for _, params in statements for value in params])
            except BaseException:
                unit.rollback_failed()
                raise
            finally:
                unit.finish(commit=True)
        except self.transient_errors as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}", "STORE_UNAVAILABLE") from exc

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        unit = _Unit(self, transaction=False)  # autocommit: one round trip
        try:
            return unit.execute(sql, params).fetchall()
        finally:
            unit.finish(commit=True)

    def _lock_migrations(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def scrub_meta_value(self, name: str) -> None:
        """VACUUM FULL rewrites the table, so the deleted row's old version is gone from its files too."""
        super().scrub_meta_value(name)
        try:
            with self._pool.connection() as conn:
                conn.execute("VACUUM FULL meta")
        except self.transient_errors as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}", "STORE_UNAVAILABLE") from exc

    def lock_key(self, cur: Any, *parts: str) -> None:
        """A transaction-level advisory lock on 63 bits of the name's SHA-256 (two names that share
        them only wait for each other)."""
        cur.execute("SELECT pg_advisory_xact_lock(?)", (_key_number(parts),))

    def select_locked_under_key(self, cur: Any, parts: Sequence[str], sql: str, params: Sequence[Any]) -> None:
        """One statement: the key's lock is a one-time filter evaluated before the scan starts, so it is
        taken first (whether a row matches or not), then the rows' locks."""
        cur.execute(f"WITH key_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(?)) {sql} "
                    f"AND EXISTS (SELECT 1 FROM key_lock){self.for_update}", (_key_number(parts), *params))

    @contextmanager
    def writes(self, cur: Any) -> Iterator[Any]:
        """One statement for the block's writes: each a data-modifying WITH, which PostgreSQL runs once and
        to completion whether or not the statement reads its rows, all on the statement's one snapshot.
        A pipelined Settle so sends its six writes as one (psycopg's Python costs about 60 k instructions
        a statement; docs/performance.md). Nothing is sent if the block raises."""
        collected = _Writes()
        yield collected
        statements = collected.statements
        if len(statements) == 1:
            cur.execute(*statements[0])
        elif statements:
            cur.execute("WITH " + ", ".join(f"w{n} AS ({sql})" for n, (sql, _) in enumerate(statements))
                        + " SELECT 1", [value for _, params in statements for value in params])

    def hold_instance_lock(self) -> bool:
        """Takes the database's single-instance advisory lock on a connection of its own, held until
        `close` (or the process's death: PostgreSQL frees it with the session). False when another
        process holds it. `instance_lock_held` tells later whether the session still has it."""
        if self._instance is None:
            try:
                self._instance = psycopg.connect(self.url, **{**CONNECT_DEFAULTS, **self._url_settings(self.url)},
                                                 autocommit=True)
            except psycopg.Error as exc:
                raise Unavailable(f"database unavailable: {type(exc).__name__}", "STORE_UNAVAILABLE") from exc
        try:
            row = self._instance.execute("SELECT pg_try_advisory_lock(%s)", (INSTANCE_LOCK,)).fetchone()
        except psycopg.Error as exc:
            self._drop_instance()
            raise Unavailable(f"database unavailable: {type(exc).__name__}", "STORE_UNAVAILABLE") from exc
        held = bool(row and row[0])
        if not held:
            self._drop_instance()
        return held

    def instance_lock_held(self) -> bool:
        """Whether the lock's session is still alive (a restarted PostgreSQL ends it, and the lock)."""
        conn = self._instance
        if conn is None:
            return False
        try:
            conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self._drop_instance()
            return False

    def _drop_instance(self) -> None:
        conn, self._instance = self._instance, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._drop_instance()
            self._pool.close(timeout=5)
