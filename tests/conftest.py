"""Shared fixtures.

- `server`: one real `ecard serve` process (fresh SQLite file) for the module; `world` seeds a fresh,
  isolated set of issuer, merchants and e-cards on it for each test.
- `pg_url` / `redis_url`: the real PostgreSQL and Redis of the machine (ECARD_TEST_PG, ECARD_TEST_REDIS).
  A test that asks for them FAILS when the service is down: CI must prove the shared deployment.
  `pg_module_url` is one fresh database for a whole module.
- `tcp_proxy(url)`: a loopback relay in this process between a server under test and PostgreSQL or
  Redis. `cut()` and `restore()` it to play an outage without stopping the machine's shared services.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from ecard.testing import EcardServer, World, free_port

PG_ADMIN_URL = os.environ.get("ECARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ECARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def server() -> Iterator[EcardServer]:
    with EcardServer() as running:
        yield running


@pytest.fixture
def world(server: EcardServer) -> World:
    return World.seed(server.target, cards=3)


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards; FAILS the test when PostgreSQL is down."""
    import psycopg

    name = f"ecard_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def pg_module_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database shared by the tests of one module."""
    with fresh_pg_database() as url:
        yield url


def reachable_redis() -> str:
    """The machine's Redis URL; FAILS the test when Redis does not answer."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis; each test isolates itself with its own key namespace."""
    return reachable_redis()


@pytest.fixture(scope="module")
def redis_module_url() -> str:
    """`redis_url` for module-scoped fixtures."""
    return reachable_redis()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """The same test on each backend: a fresh SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ecard.db"
    return request.getfixturevalue("pg_url")


class TcpProxy:
    """A loopback TCP relay to `upstream` (host, port). `cut()` closes the listening socket and every
    relayed connection, so the client sees refused and broken connections; `restore()` listens again
    on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._relayed: set[socket.socket] = set()
        self.restore()

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by this relay's (user, password and path kept)."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def restore(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            relayed, self._relayed = list(self._relayed), set()
        for sock in ([listener] if listener else []) + relayed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._relayed.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._relayed.difference_update((source, sink))
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextlib.contextmanager
def tcp_proxies() -> Iterator[Callable[[str], TcpProxy]]:
    """Makes relays to the host and port of a URL; every relay is closed at the end."""
    made: list[TcpProxy] = []

    def make(url: str) -> TcpProxy:
        parts = urlsplit(url)
        proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or {"redis": 6379}.get(parts.scheme, 5432)))
        made.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in made:
            proxy.close()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[str], TcpProxy]]:
    """`tcp_proxy(url)`: a relay to that URL's host and port, closed after the test."""
    with tcp_proxies() as make:
        yield make


@pytest.fixture(scope="module")
def module_tcp_proxy() -> Iterator[Callable[[str], TcpProxy]]:
    """`tcp_proxy` for module-scoped fixtures."""
    with tcp_proxies() as make:
        yield make
