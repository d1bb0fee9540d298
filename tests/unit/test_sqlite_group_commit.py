"""SQLite's group commit (storage.sqlite): units of work that wait for the writer share one commit.

No unit returns before the commit that holds its writes (another connection sees them then); a
unit that fails is undone alone; concurrent units commit in far fewer commits than units, and each
one's writes land exactly once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ecard.errors import Unavailable
from ecard_server.storage.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "ecard.db")
    yield opened
    opened.close()


def commits_of(store: SqliteStore) -> list[str]:
    """The COMMIT statements run from now on by the store's writer connection."""
    seen: list[str] = []
    with store.transaction():  # the writer connection exists (migrate opened it)
        pass
    assert store._write_conn is not None
    store._write_conn.set_trace_callback(lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


def meta(store: SqliteStore, name: str) -> bytes | None:
    """Read on a connection of its own: only what is committed."""
    with sqlite3.connect(store.path) as other:
        row = other.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else bytes(row[0])


def test_a_unit_that_waits_returns_after_the_commit_that_a_failing_one_makes(store: SqliteStore) -> None:
    first_wrote, first_done = threading.Event(), threading.Event()

    def first() -> None:
        with store.transaction() as cur:
            cur.execute("INSERT INTO meta (name, value) VALUES ('first', x'01')")
            first_wrote.set()
            while store._queued == 0:  # the second unit waits for the writer: this one leaves it the commit
                time.sleep(0.001)
        first_done.set()

    def second() -> None:
        first_wrote.wait(5)
        with pytest.raises(RuntimeError), store.transaction() as cur:
            cur.execute("INSERT INTO meta (name, value) VALUES ('second', x'02')")
            assert not first_done.is_set()  # the first unit's write is not committed yet: it waits
            raise RuntimeError("refused after its write")

    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(first), pool.submit(second)]
        for future in done:
            future.result(10)
    assert meta(store, "first") == b"\x01"  # committed by the failing unit, before `first` returned
    assert meta(store, "second") is None  # undone alone


def test_concurrent_units_share_commits_and_each_lands_once(store: SqliteStore) -> None:
    commits = commits_of(store)
    units = 400

    def unit(n: int) -> None:
        with store.transaction() as cur:
            cur.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (f"unit-{n}", n.to_bytes(2, "big")))
            time.sleep(0.0005)  # long enough for others to queue behind it

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(unit, range(units)))
    assert store.rows("SELECT COUNT(*) FROM meta WHERE name LIKE 'unit-%'")[0][0] == units
    assert 0 < len(commits) < units / 4, len(commits)


def test_a_failed_commit_fails_every_unit_of_its_group(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    with store.transaction() as cur:
        cur.execute("CREATE TABLE checked (n INTEGER REFERENCES meta (name) DEFERRABLE INITIALLY DEFERRED)")
    first_wrote = threading.Event()
    outcomes: dict[str, BaseException | None] = {}

    def first() -> None:
        try:
            with store.transaction() as cur:
                cur.execute("INSERT INTO meta (name, value) VALUES ('kept?', x'01')")
                first_wrote.set()
                while store._queued == 0:
                    time.sleep(0.001)
            outcomes["first"] = None
        except Unavailable as exc:
            outcomes["first"] = exc

    def second() -> None:
        first_wrote.wait(5)
        try:
            with store.transaction() as cur:  # a deferred foreign key: only the COMMIT refuses it
                cur.execute("INSERT INTO checked (n) VALUES ('nothing')")
            outcomes["second"] = None
        except (Unavailable, sqlite3.Error) as exc:
            outcomes["second"] = exc

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(first), pool.submit(second)]:
            future.result(10)
    assert isinstance(outcomes["first"], Unavailable)  # STORE_UNAVAILABLE: nothing of it was written
    assert outcomes["second"] is not None
    assert meta(store, "kept?") is None
    with store.transaction() as cur:  # the writer is free and whole again
        cur.execute("INSERT INTO meta (name, value) VALUES ('after', x'03')")
    assert meta(store, "after") == b"\x03"
