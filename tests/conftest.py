"""Shared fixtures.

Tiers: unit/ (no server), api/ (the server in the test process: api/conftest.py), process/ (`ecard`
as child processes), shared/ (PostgreSQL and Redis), cluster/ (network namespaces). Shared test code is
in helpers/; `make test-fast` runs unit/ and api/, `make test` everything.

- `server`: one real `ecard serve` process (fresh SQLite file) for the module (in api/: one in-process
  server, tests.helpers.inprocess); `world` seeds a fresh,
  isolated set of issuer, merchants and e-cards on it for each test.
- `pg_url` / `redis_url`: the real PostgreSQL and Redis of the machine (ECARD_TEST_PG, ECARD_TEST_REDIS).
  A test that asks for them FAILS when the service is down: CI must prove the shared deployment.
  `pg_module_url` is one fresh database for a whole module (`pg_module_databases()` one more at each call).
  These databases are copies of a template holding the current migrations (tests.helpers.pg_template:
  made once, named by a hash of the migrations); `pg_empty_url` / `empty_db_url` are empty ones, for the
  tests of migrating itself.
- `--part parallel|serial` (what `make test` passes): only the tests not marked `serial` (run on pytest-xdist
  workers), or only those marked `serial` (timing and load tests, run alone afterwards).
- `tcp_proxy(url)`: a loopback relay in this process (tests.helpers.proxy.TcpProxy) between a server
  under test and PostgreSQL or Redis. `cut()` and `restore()` it to play an outage without stopping
  the machine's shared services.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings

from ecard.testing import EcardServer, World
from tests.helpers.proxy import TcpProxy, tcp_proxies

# Hypothesis fails an example that takes over 200 ms by default: a timing, not a property, and a loaded
# machine (CI beside other work, 2 cores) makes any example that slow now and then. No deadline.
settings.register_profile("ecard", deadline=None)
settings.load_profile("ecard")

PG_ADMIN_URL = os.environ.get("ECARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ECARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--part", choices=("parallel", "serial"),
        help="`make test` runs the tests in two parts: 'parallel', every test not marked serial (on pytest-xdist "
             "workers), then 'serial', the tests marked serial, one at a time with nothing beside them",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    part = config.getoption("--part")
    if part is None:
        return
    serial = [item.get_closest_marker("serial") is not None for item in items]
    keep = [item for item, alone in zip(items, serial, strict=True) if alone == (part == "serial")]
    drop = [item for item, alone in zip(items, serial, strict=True) if alone != (part == "serial")]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="module")
def server() -> Iterator[EcardServer]:
    with EcardServer() as running:
        yield running


@pytest.fixture
def world(server: EcardServer) -> World:
    return World.seed(server.target, cards=3)


@contextlib.contextmanager
def fresh_pg_database(*, migrated: bool = True) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; FAILS the test when PostgreSQL is down. `migrated`:
    a copy of the template at the current schema (what `ecard serve` would make of an empty one), else
    empty."""
    import psycopg

    from tests.helpers.pg_template import migrated_template

    name = f"ecard_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    with admin:
        template = f' TEMPLATE "{migrated_template(admin, PG_ADMIN_URL)}"' if migrated else ""
        admin.execute(f'CREATE DATABASE "{name}"{template}')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database at the current schema for this test, dropped afterwards."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (no schema) for this test, dropped afterwards."""
    with fresh_pg_database(migrated=False) as url:
        yield url


@pytest.fixture(scope="module")
def pg_module_url() -> Iterator[str]:
    """A fresh PostgreSQL database at the current schema, shared by the tests of one module."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def pg_module_databases() -> Iterator[Callable[[], str]]:
    """`pg_module_databases()`: one more fresh PostgreSQL database at each call, for module-scoped
    fixtures that need more than `pg_module_url`; all dropped at the end of the module."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(fresh_pg_database())


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


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`db_url` for a module whose tests share one server per backend (each test seeds a world of its
    own): a fresh SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('module')}/ecard.db"
    return str(request.getfixturevalue("pg_module_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """The same test on each backend: a fresh SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ecard.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """`db_url` with nothing in it yet (no schema): for the tests of migrating."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ecard.db"
    return request.getfixturevalue("pg_empty_url")


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
