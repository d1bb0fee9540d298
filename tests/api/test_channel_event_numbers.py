"""A channel's event numbers under concurrent settlements, on each backend: dense from 1, no gap, no
number twice, every settlement told once, in an order consistent with the commits (a settlement
answered before another began has the smaller number), a reader paging by cursor while they commit
misses none, and a transaction that fails leaves no event and no gap. PostgreSQL numbers events
after they commit (storage.outbox); SQLite as they are written."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from ecard import DrugClass, line_item
from ecard.testing import World
from ecard_server.core.records import KEY_EXPIRING, SETTLED_EVENT, ChannelEvent
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
