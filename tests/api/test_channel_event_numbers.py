"""A channel's event numbers under concurrent settlements, on each backend: dense from 1, no gap, no
number twice, every settlement told once, in an order consistent with the commits (a settlement
answered before another began has the smaller number), a reader paging by cursor while they commit
misses none, and a transaction that fails leaves no event and no gap. PostgreSQL numbers events
after they commit (storage.outbox); SQLite as they are written."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from ecard import ChannelEventKind, ChannelEvents, DrugClass, line_item
from ecard.testing import World
from ecard.v1 import cards_pb2
from ecard_server.core import events as notices
from ecard_server.core.records import KEY_EXPIRING, SETTLED_EVENT, ChannelEvent
from ecard_server.storage import open_store
from tests.helpers.inprocess import InProcessServer

PILL = line_item("A001", "amoxicillin", DrugClass.A, 100)
CARDS, ROUNDS = 8, 12


def all_events(outbox: Any, issuer_id: str) -> list[ChannelEvent]:
    events: list[ChannelEvent] = []
    while page := outbox.page(issuer_id, events[-1].seq if events else 0, 500):
        events += page
    return events


def test_concurrent_settlements_of_one_channel_are_numbered_densely_in_commit_order(
        served: InProcessServer) -> None:
    world = World.seed(served.target, cards=CARDS, balance_fen=10**7)
    assert served.deployment is not None
    outbox = served.deployment.store.outbox
    settled: list[tuple[float, float, str]] = []  # (asked, answered, settlement_id)
    done = threading.Event()
    read: list[ChannelEvent] = []

    def settle(card: int) -> None:
        with world.pharmacy() as pos:
            for n in range(ROUNDS):
                asked = time.monotonic()
                record = pos.settle([PILL], idempotency_key=f"{card}-{n}", token=world.mint(card))
                settled.append((asked, time.monotonic(), record.settlement_id))

    def reader() -> None:  # pages by cursor as a WatchEvents stream does, while settlements commit
        while True:
            last = done.is_set()
            read.extend(outbox.page(world.issuer_id, read[-1].seq if read else 0, 7))
            if last:
                return

    threads = [threading.Thread(target=settle, args=(card,)) for card in range(CARDS)]
    watching = threading.Thread(target=reader)
    watching.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    watching.join(60)
    read.extend(outbox.page(world.issuer_id, read[-1].seq if read else 0, 500))

    events = all_events(outbox, world.issuer_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # dense, no number twice
    told = [e.detail["settlement_id"] for e in events if e.kind == SETTLED_EVENT]
    assert sorted(told) == sorted(s for _, _, s in settled) and len(told) == CARDS * ROUNDS
    assert [(e.seq, e.kind, e.detail) for e in read] == [(e.seq, e.kind, e.detail) for e in events]
    seq = {e.detail["settlement_id"]: e.seq for e in events if e.kind == SETTLED_EVENT}
    for _, answered, first in settled:
        for later_asked, _, later in settled:
            if answered < later_asked:
                assert seq[first] < seq[later], (first, later)
    assert outbox.bounds(world.issuer_id) == (1, len(events))


def test_a_failed_transaction_leaves_no_event_and_no_gap(served: InProcessServer) -> None:
    assert served.deployment is not None
    store = served.deployment.store
    channel = f"bank-{uuid.uuid4().hex[:8]}"

    def tell(cur: Any, n: int) -> None:
        store.outbox.write(cur, "", KEY_EXPIRING, {"kid": f"k{n}", "not_after": n}, n, also=(channel,), bound=False)

    with store.transaction() as cur:
        tell(cur, 1)
    with pytest.raises(RuntimeError), store.transaction() as cur:  # refused after its event was written
        tell(cur, 2)
        raise RuntimeError("refused")
    with pytest.raises(store.unique_errors), store.transaction(pipelined=True) as cur:  # fails at COMMIT
        tell(cur, 3)
        cur.execute("INSERT INTO meta (name, value) VALUES ('dup-test', ?), ('dup-test', ?)", (b"a", b"b"))
    with store.transaction() as cur:
        tell(cur, 4)
    events = store.outbox.page(channel, 0, 100)
    assert [(e.seq, e.detail["kid"]) for e in events] == [(1, "k1"), (2, "k4")]
    assert store.outbox.bounds(channel) == (1, 2)


class Stream:
    """A channel's WatchEvents stream (the SDK's ChannelEvents) read on an event loop of its own."""

    def __init__(self, target: str, issuer_id: str) -> None:
        self.got: list[cards_pb2.ChannelEvent] = []
        self._arrived = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stream", daemon=True)
        self._thread.start()
        self._reading = asyncio.run_coroutine_threadsafe(self._read(target, issuer_id), self._loop)

    async def _read(self, target: str, issuer_id: str) -> None:
        async with ChannelEvents(target, issuer_id=issuer_id) as stream:
            async for event in stream:
                with self._arrived:
                    self.got.append(event)
                    self._arrived.notify_all()

    def has(self, count: int, within: float = 30.0) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.got) >= count, within)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._reading.cancel)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@pytest.mark.postgres
def test_a_stream_woken_by_a_notice_reads_on_while_a_numberer_holds_the_channels_head(
        pg_url: str, redis_url: str) -> None:
    """A notice says the channel's numbered events grew: the stream reads them at once, and leaves an
    unnumbered event to the numbering that is under way (the notice's sender numbers what committed
    since, and tells again) instead of numbering it itself, behind the head row that numbering holds.
    (Before: every read that saw an unnumbered event numbered the channel and waited for the head.)
    The stream's own poll, which would number, is an hour: only the notices wake it here."""
    with InProcessServer.replicable(pg_url, redis_url, channel_event_poll_ms=3_600_000) as served:
        assert served.deployment is not None
        world = World.seed(served.target, cards=1)
        channel = world.issuer_id
        _, last = served.deployment.store.outbox.bounds(channel)  # the seeding's events, numbered
        stream = Stream(served.target, channel)
        other = open_store(pg_url)  # another replica's writes: its numbering thread tells nobody
        try:
            assert stream.has(last)

            def tell(n: int) -> None:
                with other.transaction() as cur:
                    other.outbox.write(cur, "", KEY_EXPIRING, {"kid": f"k{n}", "not_after": n}, n, also=(channel,),
                                       bound=False)

            tell(1)
            other.outbox.number((channel,))  # numbered, its stream not yet told
            with psycopg.connect(pg_url) as numbering:  # a numbering round under way: the head row held
                numbering.execute("SELECT 1 FROM channel_event_heads WHERE issuer_id = %s FOR UPDATE", (channel,))
                tell(2)  # committed; waits for its number behind the head
                served.deployment.bus.publish(notices.CHANNEL_EVENTS, channel)  # the notice of tell(1)
                assert stream.has(last + 1), "the stream waited for the head row held by another numbering"
                numbering.rollback()
            other.outbox.number((channel,))
            served.deployment.bus.publish(notices.CHANNEL_EVENTS, channel)  # the notice of tell(2)
            assert stream.has(last + 2)
            told = [(e.cursor, e.kind) for e in stream.got[last:]]
            assert told == [(last + 1, ChannelEventKind.KEY_EXPIRING), (last + 2, ChannelEventKind.KEY_EXPIRING)]
        finally:
            stream.close()
            other.close()
