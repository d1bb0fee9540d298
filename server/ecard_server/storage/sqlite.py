"""The embedded default: one SQLite file in WAL mode, a connection per thread."""

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
        self._writer = threading.RLock()
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

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=FULL")  # an acknowledged settlement survives a crash
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _transaction(self, *, pipelined: bool = False) -> Iterator[Any]:  # (no round trips to save)
        # Writers of this process queue on a lock, not in SQLite's busy handler: that one sleeps and
        # polls (1, 2, 5, 10 ms ...), so concurrent settlements would idle and pile up behind each other.
        with self._writer:
            conn = self._conn()
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                conn.rollback()
                raise
            else:
                conn.commit()
            finally:
                cur.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn().execute(sql, params).fetchall()

    def scrub_meta_value(self, name: str) -> None:
        """With secure_delete the freed page is zeroed; the checkpoint then empties the WAL that still held it."""
        with self._writer:
            conn = self._conn()
            conn.execute("PRAGMA secure_delete=ON")
            try:
                super().scrub_meta_value(name)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.execute("PRAGMA secure_delete=OFF")

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
        if self._instance is not None:
            os.close(self._instance)
            self._instance = None
