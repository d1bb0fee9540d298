"""The channels' outbox in SQL: events written inside the transaction of the change they tell of.

A write that changes a card, a binding or money calls `Outbox.write` last in its transaction: one row
per channel bound to the e-card (and any channel named in `also`), numbered by the channel's head row.
The head row stays locked until the commit, so one channel's events commit in the order of their
numbers and a reader that pages by number never passes over an event still to commit. Once the
transaction commits, the channels told are handed to the store's notice hook (the change bus), which
wakes their open streams on every replica; a stream also polls, so a lost notice delays, never loses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ecard_server.core.records import KEY_EXPIRING, ChannelEvent
from ecard_server.storage import mapper
from ecard_server.storage.rows import Cursor, Transactions, insert_rows

_NEXT_SEQ = (  # every channel's next number in one statement (one round trip, its rows locked in one go)
    "INSERT INTO channel_event_heads (issuer_id, last_seq) VALUES {values} ON CONFLICT (issuer_id) "
    "DO UPDATE SET last_seq = channel_event_heads.last_seq + 1 RETURNING issuer_id, last_seq"
)
_INSERT = "INSERT INTO channel_events (issuer_id, seq, kind, ecard_id, detail, created_at) VALUES "
# Where a WITH may hold the numbering (PostgreSQL): numbers and events in one statement whose answer
# nobody waits for, so a pipelined transaction sends it with its COMMIT, and the channels' head rows
# stay locked for the commit only (not for a round trip to this process and back besides).
_NUMBERED_INSERT = (
    "WITH heads AS (" + _NEXT_SEQ + ") INSERT INTO channel_events (issuer_id, seq, kind, ecard_id, detail, "
    "created_at) SELECT issuer_id, last_seq, ?, ?, ?, ? FROM heads"
)


class Outbox:
    def __init__(self, store: Transactions) -> None:
        self._store = store
        self._local = threading.local()  # the channels told by this thread's open transaction
        self.on_committed: Callable[[Iterable[str]], None] | None = None
        """Called with the channels told, after each transaction that told any commits."""

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Around one transaction: the channels it tells are handed to `on_committed` once it commits."""
        told: set[str] = set()
        self._local.told = told
        try:
            yield
        finally:
            self._local.told = None
        if told and self.on_committed is not None:
            self.on_committed(told)

    def write(self, cur: Cursor, ecard_id: str, kind: str, detail: dict[str, Any], now: int, *,
              also: Sequence[str] = (), bound: bool = True) -> None:
        """One event for each channel bound to `ecard_id` (with `bound`) and each of `also`. Call it
        last in the transaction: it takes the channels' head rows, in one order (by id)."""
        issuers = set(also)
        if bound and ecard_id:
            cur.execute("SELECT issuer_id FROM ecard_channels WHERE ecard_id = ?", (ecard_id,))
            issuers.update(row[0] for row in cur.fetchall())
        if not issuers:
            return
        payload = json.dumps(detail, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        ordered = sorted(issuers)
        values = ", ".join(["(?, 1)"] * len(ordered))
        if self._store.writes_in_with:
            cur.execute(_NUMBERED_INSERT.format(values=values), [*ordered, kind, ecard_id, payload, now])
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

    # -- reads ------------------------------------------------------------------------------------
    def page(self, issuer_id: str, after: int, limit: int, kinds: Sequence[str] = ()) -> list[ChannelEvent]:
        only = f" AND kind IN ({', '.join('?' * len(kinds))})" if kinds else ""
        rows = self._store.rows(
            f"SELECT {mapper.CHANNEL_EVENT.select} FROM channel_events WHERE issuer_id = ? AND seq > ?{only} "
            f"ORDER BY seq LIMIT {int(limit)}",
            (issuer_id, after, *kinds),
        )
        return [mapper.channel_event(issuer_id, row) for row in rows]

    def bounds(self, issuer_id: str) -> tuple[int, int]:
        """(the first number still kept, the last number given) of a channel's events; (0, 0) for none."""
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
        """Drops events written before `before` (unix s); a cursor older than what is kept is then refused."""
        with self._store.transaction() as cur:
            cur.execute("DELETE FROM channel_events WHERE created_at < ?", (before,))
