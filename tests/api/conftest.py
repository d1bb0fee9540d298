"""Fixtures of the api tier: the server runs in the test process (tests.helpers.inprocess), so the
daily loop (`make test-fast`) starts no `ecard serve` process.

- `server`: one in-process server (fresh SQLite file) for the module; `world` (tests/conftest.py)
  seeds a fresh issuer, merchants and e-cards on it for each test.
- `served`: a server on `db_url` (each backend) that `served.replica()` servers may join;
  `replicable(**settings)` makes one with other settings (a module's own `served` fixture).
- `pos_client`, `hospital_client`: world.pharmacy's (world.hospital's) client as the counter uses it,
  once through the sync PharmacyClient and once through the AsyncPharmacyClient (on an event loop of
  its own), behind one sync face: verify, settle, refund, get_settlement, get_verification...
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from typing import Any

import pytest

from ecard import AsyncPharmacyClient, PharmacyClient
from ecard.testing import World
from tests.helpers.inprocess import InProcessServer


@pytest.fixture(scope="module")
def server() -> Iterator[InProcessServer]:
    with InProcessServer() as running:
        yield running


@pytest.fixture
def replicable(db_url: str, request: pytest.FixtureRequest) -> Callable[..., InProcessServer]:
    """`replicable(**settings)`: InProcessServer.replicable on `db_url`, with the machine's Redis on
    PostgreSQL (replicas share it, in a namespace of their own); SQLite needs none."""
    redis = None if db_url.startswith("sqlite") else request.getfixturevalue("redis_url")
    return partial(InProcessServer.replicable, db_url, redis)


@pytest.fixture
def served(replicable: Callable[..., InProcessServer]) -> Iterator[InProcessServer]:
    with replicable() as running:
        yield running


class AsyncCounter:
    """An AsyncPharmacyClient on its own event loop, called from the test's thread."""

    def __init__(self, target: str, merchant_id: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pos-client", daemon=True)
        self._thread.start()

        async def connect() -> AsyncPharmacyClient:
            return AsyncPharmacyClient(target, merchant_id=merchant_id)

        self._client = self._run(connect())

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(60)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        return lambda *args, **fields: self._run(method(*args, **fields))

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(params=["sync", "async"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def counter_client(world: World, merchant_id: str, kind: str) -> Iterator[PharmacyClient | AsyncCounter]:
    """The merchant's client of that kind, closed afterwards."""
    client = PharmacyClient(world.target, merchant_id=merchant_id) if kind == "sync" else \
        AsyncCounter(world.target, merchant_id)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def pos_client(world: World, client_kind: str) -> Iterator[PharmacyClient | AsyncCounter]:
    """world.pharmacy's client: the sync PharmacyClient, then the AsyncPharmacyClient."""
    yield from counter_client(world, world.pharmacy_id, client_kind)


@pytest.fixture
def hospital_client(world: World, client_kind: str) -> Iterator[PharmacyClient | AsyncCounter]:
    """world.hospital's client, sync then asyncio (with pos_client in one test: the same kind)."""
    yield from counter_client(world, world.hospital_id, client_kind)
