"""The channels' outbox in SQL: events written inside the transaction of the change they tell of.

A write that changes a card, a binding or money calls `Outbox.write` last in its transaction: one row
per channel bound to the e-card (and any channel named in `also`). Each channel's events are numbered
densely (1, 2, 3, ...) by its head row, so that a reader pages by number and never passes over an
event still to commit:

- SQLite (its writes run one at a time): numbered in the writing transaction, the head row taken last.
- PostgreSQL (`numbers_after_commit`): written unnumbered, in the order of `written` (a sequence), and
  numbered once committed, by `number`: one short transaction that locks the channels' head rows and
  numbers each channel's committed unnumbered events in `written` order. The writing process's
  numbering thread does it right after the commit (for every channel told meanwhile, in one
  transaction) and then wakes the channels' streams. A stream woken so reads the numbered events only
  (`page(number=False)`): what committed since is the numbering thread's next round, and a reader
  numbering it too would queue behind that round's head rows (and hold a pooled connection while
  it waits). A stream's first read and its reads on its own every poll interval number the channel
  when they find an unnumbered event (`page`, `bounds`: the writer may have died before numbering),
  and the upkeep does before it prunes. A Settle so never waits for another's commit, and the numbers
  stay dense (a rolled-back event was never numbered), unique (the head row), visible all at once
  (one transaction) and in an order consistent with the commits: an event committed before another
  was written gets the smaller `written` and so the smaller number; events of one card are written
  one after another under the card's row lock.

Once the transaction commits (on PostgreSQL: once the numbering thread numbered its events), the
channels told are handed to the store's notice hook (the change bus), which wakes their open streams
on every replica; a stream also polls, so a lost notice delays, never loses.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ecard.errors import EcardError
from ecard_server.core.records import KEY_EXPIRING, ChannelEvent
from ecard_server.logs import event
from ecard_server.storage import mapper
from ecard_server.storage.rows import Cursor, Transactions, insert_rows

log = logging.getLogger("ecard.outbox")

_NEXT_SEQ = (  # every channel's next number in one statement (one round trip, its rows locked in one go)
    "INSERT INTO channel_event_heads (issuer_id, last_seq) VALUES {values} ON CONFLICT (issuer_id) "
    "DO UPDATE SET last_seq = channel_event_heads.last_seq + 1 RETURNING issuer_id, last_seq"
)
_INSERT = "INSERT INTO channel_events (issuer_id, seq, kind, ecard_id, detail, created_at) VALUES "
_INSERT_UNNUMBERED = "INSERT INTO channel_events (issuer_id, kind, ecard_id, detail, created_at) VALUES "
# PostgreSQL's numbering of some channels' events: `_LOCK_HEADS` takes their head rows (in one order,
# by id, so numberers never wait on each other in a circle), then `_NUMBER`, a statement of its own so
# that its snapshot is taken once the heads are held and sees every event committed before: each
# channel's committed unnumbered events get the numbers after its head's, in `written` order, and the
# head moves past them.
_LOCK_HEADS = (
    "INSERT INTO channel_event_heads (issuer_id, last_seq) SELECT issuer_id, 0 FROM unnest(?::text[]) AS t(issuer_id) "
    "ORDER BY issuer_id ON CONFLICT (issuer_id) DO UPDATE SET last_seq = channel_event_heads.last_seq"
)
_NUMBER = (
    "WITH todo AS (SELECT written, issuer_id, row_number() OVER (PARTITION BY issuer_id ORDER BY written) AS n "
    "FROM channel_events WHERE issuer_id = ANY(?::text[]) AND seq IS NULL), "
    "numbered AS (UPDATE channel_events e SET seq = h.last_seq + todo.n FROM todo JOIN channel_event_heads h "
    "ON h.issuer_id = todo.issuer_id WHERE e.written = todo.written RETURNING e.issuer_id) "
    "UPDATE channel_event_heads h SET last_seq = h.last_seq + c.k FROM (SELECT issuer_id, COUNT(*) AS k "
    "FROM numbered GROUP BY issuer_id) c WHERE h.issuer_id = c.issuer_id"
)


class Outbox:
    IDLE_S = 1.0  # how long the numbering thread waits for more work before it ends

    def __init__(self, store: Transactions) -> None:
        self._store = store
        self._local = threading.local()  # the channels told by this thread's open transaction
        self.on_committed: Callable[[Iterable[str]], None] | None = None
        """Called with the channels told, after each transaction that told any commits (where events
        are numbered after commit: once the numbering thread numbered them)."""
        self._lock = threading.Lock()
        self._waiting: set[str] = set()  # channels told, to number (numbers_after_commit)
        self._wake = threading.Condition(self._lock)
        self._numbering = False  # a numbering thread runs

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Around one transaction: the channels it tells are handed to `on_committed` once it commits
        (where events are numbered after commit, through the numbering thread, which numbers them first)."""
        told: set[str] = set()
        self._local.told = told
        try:
            yield
        finally:
            self._local.told = None
        if not told:
            return
        if self._store.numbers_after_commit:
            self._to_number(told)
        elif self.on_committed is not None:
            self.on_committed(told)

    def _to_number(self, channels: set[str]) -> None:
        """Hands committed channels to the numbering thread (started when none runs). The Settle does
        not wait: its events are numbered by the thread, in one transaction for every channel told
        meanwhile, or by the first reader, whichever comes first."""
        with self._lock:
            self._waiting |= channels
            if self._numbering:
                self._wake.notify()
                return
            self._numbering = True
        threading.Thread(target=self._number_told, name="ecard-event-numbering", daemon=True).start()

    def _number_told(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._wake.wait(self.IDLE_S)
                if not self._waiting:
                    self._numbering = False
                    return
                channels, self._waiting = self._waiting, set()
            try:
                self.number(channels)
            except EcardError as exc:  # the store is down: the streams' polls and the upkeep number them later
                event(log, "event_numbering_deferred", level=logging.WARNING, error=str(exc))
            except Exception as exc:  # the thread goes on: the streams' polls and the upkeep number them too
                event(log, "event_numbering_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            else:  # told only once numbered: a stream woken by a notice reads numbered events, numbers none
                if self.on_committed is not None:
                    self.on_committed(channels)

    def write(self, cur: Cursor, ecard_id: str, kind: str, detail: dict[str, Any], now: int, *,
              also: Sequence[str] = (), bound: bool = True, channels: Sequence[str] | None = None) -> None:
        """One event for each channel bound to `ecard_id` (with `bound`; `channels`: those bindings, when
        the caller read them already in this transaction) and each of `also`. Call it last in the
        transaction: where events are numbered as they are written, it takes the channels' head rows, in
        one order (by id)."""
        issuers = set(also)
        if bound and ecard_id:
            if channels is None:
                cur.execute("SELECT issuer_id FROM ecard_channels WHERE ecard_id = ?", (ecard_id,))
                channels = [row[0] for row in cur.fetchall()]
            issuers.update(channels)
        if not issuers:
            return
        payload = json.dumps(detail, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        ordered = sorted(issuers)
        values = ", ".join(["(?, 1)"] * len(ordered))
        if self._store.numbers_after_commit:  # no head row: numbered once committed (`number`)
            insert_rows(cur, _INSERT_UNNUMBERED, "(?, ?, ?, ?, ?)",
                        [(issuer_id, kind, ecard_id, payload, now) for issuer_id in ordered])
        else:
            self._insert_numbered(cur, values, ordered, kind, ecard_id, payload, now)
        told = getattr(self._local, "told", None)
        if told is not None:
            told.update(issuers)

    @staticmethod
    def _insert_numbered(cur: Cursor, values: str, ordered: list[str], kind: str, ecard_id: str, payload: str,
                         now: int) -> None:
        cur.execute(_NEXT_SEQ.format(values=values), ordered)
        seqs = {issuer_id: int(seq) for issuer_id, seq in cur.fetchall()}
        insert_rows(cur, _INSERT, "(?, ?, ?, ?, ?, ?)",
                    [(issuer_id, seqs[issuer_id], kind, ecard_id, payload, now) for issuer_id in ordered])

    # -- numbering after commit (PostgreSQL) ------------------------------------------------------
    def number(self, issuer_ids: Iterable[str]) -> None:
        """Numbers these channels' committed unnumbered events, in one transaction (nothing where events
        are numbered as they are written): after it, every event of theirs committed before the call
        has its number."""
        channels = sorted(set(issuer_ids))
        if not self._store.numbers_after_commit or not channels:
            return
        self._store.in_turn([(_LOCK_HEADS, (channels,)), (_NUMBER, (channels,))])  # one message, read nothing

    def _unnumbered(self, issuer_id: str) -> bool:
        return self._store.numbers_after_commit and bool(self._store.rows(
            "SELECT 1 FROM channel_events WHERE issuer_id = ? AND seq IS NULL LIMIT 1", (issuer_id,)))

    def number_all(self) -> None:
        """`number` for every channel with an unnumbered event."""
        if self._store.numbers_after_commit:
            self.number(row[0] for row in self._store.rows(
                "SELECT DISTINCT issuer_id FROM channel_events WHERE seq IS NULL"))

    # -- reads ------------------------------------------------------------------------------------
    def page(self, issuer_id: str, after: int, limit: int, kinds: Sequence[str] = (), *,
             number: bool = True) -> list[ChannelEvent]:
        """Up to `limit` numbered events after the cursor `after`, in order. Where events are numbered
        after commit and `number` is set, the same statement tells whether one waits for its number:
        then the channel is numbered and read again. A stream woken by a notice reads with `number`
        unset: the numbering thread that sent it numbers what committed since, and tells again."""
        only = f" AND kind IN ({', '.join('?' * len(kinds))})" if kinds else ""
        sql = (f"SELECT {mapper.CHANNEL_EVENT.select} FROM channel_events WHERE issuer_id = ? AND seq > ?{only} "
               f"ORDER BY seq LIMIT {int(limit)}")
        params: tuple[Any, ...] = (issuer_id, after, *kinds)
        if self._store.numbers_after_commit and number:
            sql = (f"({sql}) UNION ALL (SELECT {mapper.CHANNEL_EVENT.select} FROM channel_events "
                   f"WHERE issuer_id = ? AND seq IS NULL LIMIT 1)")
            params = (*params, issuer_id)
        rows = self._store.rows(sql, params)
        if any(row[0] is None for row in rows):  # CHANNEL_EVENT's first column: seq
            self.number((issuer_id,))
            return self.page(issuer_id, after, limit, kinds, number=False)
        return [mapper.channel_event(issuer_id, row) for row in rows]

    def bounds(self, issuer_id: str) -> tuple[int, int]:
        """(the first number still kept, the last number given) of a channel's events; (0, 0) for none."""
        if self._unnumbered(issuer_id):
            self.number((issuer_id,))
        head = self._store.rows("SELECT last_seq FROM channel_event_heads WHERE issuer_id = ?", (issuer_id,))
        if not head:
            return 0, 0
        first = self._store.rows("SELECT MIN(seq) FROM channel_events WHERE issuer_id = ?", (issuer_id,))[0][0]
        last = int(head[0][0])
        return (int(first) if first is not None else last + 1), last

    # -- upkeep -----------------------------------------------------------------------------------
    def warn_expiring_keys(self, now: int, horizon_s: int) -> int:
        """A KEY_EXPIRING event for each key (not revoked) whose validity ends within `horizon_s`, once
        per key and end, whichever replica gets here first. Returns how many were written."""
        written = 0
        with self._store.transaction() as cur:
            cur.execute(
                "SELECT issuer_id, kid, not_after FROM issuer_keys WHERE NOT revoked AND not_after IS NOT NULL "
                "AND not_after > ? AND not_after <= ? ORDER BY issuer_id, kid",
                (now, now + horizon_s),
            )
            for issuer_id, kid, not_after in cur.fetchall():
                cur.execute(
                    "INSERT INTO key_expiry_warnings (issuer_id, kid, not_after, warned_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (issuer_id, kid, not_after) DO NOTHING RETURNING kid",
                    (issuer_id, kid, not_after, now),
                )
                if cur.fetchone() is not None:
                    self.write(cur, "", KEY_EXPIRING, {"kid": kid, "not_after": int(not_after)}, now,
                               also=(issuer_id,), bound=False)
                    written += 1
        return written

    def prune(self, before: int) -> None:
        """Drops events written before `before` (unix s); a cursor older than what is kept is then refused.
        Numbered first: an event is never dropped before it had its number (and its reader the gap told)."""
        self.number_all()
        with self._store.transaction() as cur:
            cur.execute("DELETE FROM channel_events WHERE created_at < ? AND seq IS NOT NULL", (before,))
