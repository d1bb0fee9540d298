"""The embedded default: one SQLite file in WAL mode, a connection per thread for reads, one for writes.

Writes commit in groups: the units of work (SqlStore.transaction) of this process run one at a time
on the writer connection, each in a SAVEPOINT of one open transaction; a unit that finishes while
others wait for the writer leaves the transaction open for them, and the last one commits it, so
the synchronous=FULL commit (an fsync) is paid once for the group. No unit's `with` block returns
before the commit that holds its writes: a settlement is acknowledged only once it survives a crash.
A unit that fails is rolled back to its savepoint and leaves the others be; a failed commit fails
every unit of the group (STORE_UNAVAILABLE: their retries find nothing written).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from ecard_server.storage.sql import SqlStore

MAX_GROUP = 64  # units of work at most in one commit


class _Group:
    """Units of work sharing one transaction of the writer connection, and the outcome of its commit."""

    __slots__ = ("done", "error", "waiting")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.waiting = 0  # units done with their statements, waiting for the commit

    def outcome(self) -> None:
        """Waits for the group's commit; raises if it failed."""
        self.done.wait()
        if self.error is not None:
            raise sqlite3.OperationalError(f"the group's commit failed: {self.error}") from self.error


def _owner_only(path: str) -> None:
    """The database file, made 0600 before SQLite opens it (its -wal and -shm files take the same mode);
    one made readable to others by an earlier version is narrowed to 0600."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        for name in (path, f"{path}-wal", f"{path}-shm"):
            with contextlib.suppress(FileNotFoundError):
                if os.stat(name).st_mode & 0o077:
                    os.chmod(name, 0o600)
    except OSError as exc:
        raise ValueError(f"cannot create SQLite database {path}: {exc.strerror}") from None


class SqliteStore(SqlStore):
    backend = "sqlite"
    local = True  # a file on this host: a cache miss is a local read, never a network round trip
    dialect: ClassVar[dict[str, str]] = {"blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}
    transient_errors = (sqlite3.OperationalError,)
    unique_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise ValueError(f"database folder does not exist: {parent}")
            _owner_only(self.path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = threading.Lock()  # held by the unit of work running on the writer connection
        self._queued = 0  # units waiting for the writer (under _lock)
        self._group: _Group | None = None  # the writer connection's open transaction, if any
        self._write_conn: sqlite3.Connection | None = None
        self._instance: int | None = None  # a descriptor of the file holding its flock (hold_instance_lock)
        try:
            self._conn().execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"cannot open SQLite database {self.path}: {exc}") from None
        self.migrate()

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        path = url.removeprefix("sqlite://")
        if not path.startswith("/") or len(path) < 2:
            raise ValueError(f"SQLite URL needs a path: sqlite:///relative.db or sqlite:////abs/path.db, not {url!r}")
        return cls(path[1:])

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=FULL")  # an acknowledged settlement survives a crash
        conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def _transaction(self, *, pipelined: bool = False) -> Iterator[Any]:  # (no round trips to save)
        # Writers of this process queue on a lock, not in SQLite's busy handler: that one sleeps and
        # polls (1, 2, 5, 10 ms ...), so concurrent settlements would idle and pile up behind each other.
        with self._lock:
            self._queued += 1
        self._writer.acquire()
        with self._lock:
            self._queued -= 1
        try:
            if self._write_conn is None:
                self._write_conn = self._connect()
            conn = self._write_conn
            if self._group is None:
                conn.execute("BEGIN IMMEDIATE")
                self._group = _Group()
            group = self._group
            conn.execute("SAVEPOINT unit")
        except BaseException as exc:
            self._close_group(exc)
            raise
        failure: BaseException | None = None
        cur = conn.cursor()
        try:
            yield cur
            conn.execute("RELEASE unit")
        except BaseException as exc:
            failure = exc
            try:
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
            except sqlite3.Error as lost:  # SQLite ended the whole transaction (an I/O error, a full disk)
                self._close_group(lost)
                raise failure from None
        finally:
            cur.close()
        if not conn.in_transaction:
            self._close_group(failure or sqlite3.OperationalError("the transaction ended early"))
        else:
            with self._lock:
                others = self._queued
            if others and group.waiting < MAX_GROUP:  # one of them (or a later unit) commits
                group.waiting += failure is None
                self._writer.release()
            else:
                self._close_group(None)
        if failure is not None:
            raise failure
        group.outcome()

    def _close_group(self, failure: BaseException | None) -> None:
        """Under the writer: commits the open transaction (rolls it back on `failure`), tells its units
        the outcome, and lets the next unit in."""
        group, self._group = self._group, None
        try:
            if group is not None:
                conn = self._write_conn
                assert conn is not None
                try:
                    if failure is None:
                        conn.execute("COMMIT")
                    elif conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    failure = exc
                    with contextlib.suppress(sqlite3.Error):
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                group.error = failure
                group.done.set()
        finally:
            self._writer.release()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn().execute(sql, params).fetchall()

    def scrub_meta_value(self, name: str) -> None:
        """With secure_delete the freed page is zeroed; the checkpoint then empties the WAL that still held it."""
        with self.transaction() as cur:  # on the writer connection, as the delete
            cur.execute("PRAGMA secure_delete=ON")
        try:
            super().scrub_meta_value(name)
        finally:
            with self.transaction() as cur:
                cur.execute("PRAGMA secure_delete=OFF")
        # Committed: the checkpoint (waiting out any writer in SQLite's busy handler) copies the zeroed
        # page into the database file and truncates the WAL.
        self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def hold_instance_lock(self) -> bool:
        """Takes an exclusive flock(2) of the database file, held until `close` or the process's death;
        False when another server holds it. (flock, not SQLite's own fcntl locks: the two never meet.
        The descriptor stays open until after SQLite's connections close, so none of their locks drop.)"""
        if self.path == ":memory:" or self._instance is not None:
            return True
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._instance = fd
        return True

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
        self._write_conn = None
        if self._instance is not None:
            os.close(self._instance)
            self._instance = None
