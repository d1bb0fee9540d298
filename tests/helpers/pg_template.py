"""The PostgreSQL database that the tests' fresh databases are copies of (CREATE DATABASE ... TEMPLATE):
the current migrations applied once, by the server's own `migrate`, instead of once per database.

Its name holds a hash of what makes the schema (the migrations, the PostgreSQL dialect they are
written in, the code that applies them), so a changed or added migration makes a new template on the
next run; one that matches is reused by every later run on that PostgreSQL. It takes no connections
(ALLOW_CONNECTIONS false): a connection to a template makes every copy of it fail. Migrating an empty
database, as `ecard serve` does on its first start, is tested on `pg_empty_url` (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import uuid
from typing import Any

import psycopg

from ecard_server.storage.migrations import MIGRATIONS
from ecard_server.storage.postgres import PostgresStore
from ecard_server.storage.sql import SqlStore


def template_name() -> str:
    """`ecard_template_` and 16 hex digits of SHA-256 over what decides the migrated schema."""
    digest = hashlib.sha256()
    for part in (repr(MIGRATIONS), repr(sorted(PostgresStore.dialect.items())), PostgresStore.backend,
                 inspect.getsource(SqlStore.migrate), inspect.getsource(SqlStore._apply_migration)):
        digest.update(part.encode() + b"\x00")
    return f"ecard_template_{digest.hexdigest()[:16]}"


def migrated_template(admin: Any, admin_url: str) -> str:
    """The template's name, made first if this PostgreSQL has none for these migrations. `admin`: an
    autocommit psycopg connection to `admin_url`. Runs made at once each build one under a name of
    their own and rename it; the first rename wins, the others drop theirs."""
    name = template_name()
    if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        return name
    building = f"{name}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{building}"')
    try:
        PostgresStore(f"{admin_url.rsplit('/', 1)[0]}/{building}", min_size=1, max_size=1).close()
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (building,))
        admin.execute(f'ALTER DATABASE "{building}" WITH ALLOW_CONNECTIONS false')
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
            building = ""
    finally:
        if building:
            admin.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
    return name
