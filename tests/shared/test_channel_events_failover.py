"""A replica killed mid-stream (twice) while settlements go on: the channel's stream (the SDK's
ChannelEvents over both replicas) reconnects, resumes from its cursor and misses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from pathlib import Path

import pytest

from ecard import ChannelEventKind, ChannelEvents, DrugClass, EcardError, PharmacyClient, line_item
from ecard.testing import EcardServer, World
from ecard.v1 import cards_pb2
from ecard_server.storage import open_store

K = ChannelEventKind


class Writer:
    """Settles on the world's cards through whichever replica answers, until stopped; keeps the ids of
    the settlements it was told of."""

    def __init__(self, world: World, targets: list[str]) -> None:
        self.world, self.targets = world, targets
        self.done: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            with PharmacyClient(self.targets, merchant_id=self.world.pharmacy_id) as pos, \
                    contextlib.suppress(EcardError):
                record = pos.settle([line_item("A001", "amoxicillin", DrugClass.A, 10)],
                                    idempotency_key=f"w-{n}", token=self.world.mint(n % 3))
                self.done.append(record.settlement_id)
            time.sleep(0.02)


@pytest.mark.postgres
@pytest.mark.redis
def test_a_replica_killed_mid_stream_loses_no_event(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "ecard.toml"
    config.write_text(f'redis_namespace = "ecard-events-{uuid.uuid4().hex[:10]}"\n')
    args = ["--config", str(config)]
    a = EcardServer(db=pg_url, redis=redis_url, extra_args=args).start()
    b = EcardServer(db=pg_url, redis=redis_url, extra_args=args).start()
    servers = [a, b]
    try:
        world = World.seed(b.target, cards=3)
        targets = [a.target, b.target]
        writer = Writer(world, targets)
        seen: list[cards_pb2.ChannelEvent] = []

        def settled_ids() -> set[str]:
            return {e.settlement_id for e in seen if e.kind == K.SETTLED}

        async def watch() -> int:
            async with ChannelEvents(targets, issuer_id=world.issuer_id) as stream:
                async def read() -> None:
                    async for event in stream:
                        seen.append(event)

                reading = asyncio.ensure_future(read())
                await asyncio.sleep(1.0)
                a.kill()  # SIGKILL mid-stream; the writer goes on through B
                await asyncio.sleep(1.5)
                servers.append(restarted := EcardServer(db=pg_url, redis=redis_url, extra_args=args, port=a.port))
                await asyncio.to_thread(restarted.start)
                b.kill()  # and now the other one: the stream was on one of them
                await asyncio.sleep(1.5)
                writer.stop.set()
                await asyncio.to_thread(writer.thread.join, 30)
                deadline = time.monotonic() + 20
                while not set(writer.done) <= settled_ids():
                    if time.monotonic() > deadline:
                        missing = set(writer.done) - settled_ids()
                        raise AssertionError(f"{len(missing)} of {len(writer.done)} settlements never heard of; "
                                             f"{len(seen)} events, {stream.reconnects} reconnections")
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # anything more (a settlement whose answer was lost) comes in too
                reading.cancel()
                return stream.reconnects

        writer.thread.start()
        try:
            reconnects = asyncio.run(watch())
        finally:
            writer.stop.set()
            writer.thread.join(timeout=30)
        assert reconnects >= 1
        assert len(writer.done) > 20
        store = open_store(pg_url)
        try:  # every settlement committed, its answer lost to a kill or not, was told once
            stored = {r[0] for r in store.rows("SELECT settlement_id FROM settlements WHERE merchant_id = ?",
                                               (world.pharmacy_id,))}
        finally:
            store.close()
        assert settled_ids() == stored
        assert set(writer.done) <= settled_ids()
        cursors = [e.cursor for e in seen]
        assert cursors == list(range(1, len(seen) + 1)), "every event once, in order, no gap"
        print(f"{len(seen)} events, {len(writer.done)} settlements, {reconnects} reconnections")
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                server.kill()
                server.__exit__(None, None, None)
