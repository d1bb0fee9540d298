"""The whole server in the test process: what `ecard serve` runs (app.Deployment.open and
app.create_server on a grpc.aio event loop), without the child process.

`InProcessServer` stands where `ecard.testing.EcardServer` stands for the api tier: `.target`, `.db`,
`start()`, `stop()`, `restart()` (same port, same database), a context manager. The event loop runs on
a thread of its own, so the test's sync and asyncio clients call it over real loopback gRPC. What only
a process can show (a crash, signals, logs on stderr, `--workers`) belongs to the process tier.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from ecard.testing import shared_secret_file, wait_healthy
from ecard_server.app import BoundServer, Deployment, create_server
from ecard_server.config import Settings
from ecard_server.keyring import SecretSource

T = TypeVar("T")


class InProcessServer:
    """db: a database URL (default: a fresh SQLite file in a temporary folder); redis: a Redis URL or
    None (the embedded default); settings: what `--config` would give (default: the contract's)."""

    def __init__(self, *, db: str | None = None, redis: str | None = None, settings: Settings | None = None,
                 grace_s: float = 1.0) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="ecard-test-")
        self.db = db or f"sqlite:///{self._tmp.name}/ecard.db"
        self.redis = redis
        self.settings = settings or Settings()
        self.grace_s = grace_s
        self.port = 0  # chosen by the first start, kept by restarts
        self.target = ""
        self.deployment: Deployment | None = None
        self._bound: BoundServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def replicable(cls, db: str, redis: str | None, **settings: Any) -> InProcessServer:
        """A server that replicas (`replica`) may join: on PostgreSQL with `redis` and a Redis namespace of
        its own (PostgreSQL without Redis is one process: `--single-instance`). On SQLite, the server
        alone: SQLite without Redis is one server, so `replica` skips the test there."""
        if db.startswith("sqlite"):
            return cls(db=db, settings=Settings().with_overrides(settings))
        namespace = f"ecard-test-{uuid.uuid4().hex[:12]}"
        return cls(db=db, redis=redis, settings=Settings().with_overrides({"redis_namespace": namespace, **settings}))

    @staticmethod
    def skip_unless_replicable(db: str, redis: str | None) -> None:
        """Skips the test where a second server on `db` would be refused: SQLite without Redis."""
        if db.startswith("sqlite") and not redis:
            pytest.skip("SQLite without Redis is one server: replicas need PostgreSQL and Redis")

    def replica(self, **settings: Any) -> InProcessServer:
        """Another server on this one's database and Redis namespace, with `settings` changed. On SQLite
        without Redis the test is skipped: a second server there is refused (one process holds the file)."""
        self.skip_unless_replicable(self.db, self.redis)
        return InProcessServer(db=self.db, redis=self.redis, settings=self.settings.with_overrides(settings))

    def deaf_replica(self, **settings: Any) -> InProcessServer:
        """Another server on this one's database that hears none of its change notices: a Redis namespace
        of its own. Skipped where `replica` is."""
        self.skip_unless_replicable(self.db, self.redis)
        return InProcessServer.replicable(self.db, self.redis, **settings)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> InProcessServer:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="ecard-in-process", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        # As ecard.testing.EcardServer: servers sharing a database share its secret file.
        secret_file = None if self.db.startswith("sqlite") else shared_secret_file()
        deployment = Deployment.open(self.settings, self.db, self.redis,
                                     secrets=SecretSource.for_database(self.db, secret_file),
                                     single_instance=not self.redis and not self.db.startswith("sqlite"))

        async def bind() -> BoundServer:
            # Plaintext on loopback with the caller named in metadata, as `ecard serve --dev-principals`.
            bound = create_server(deployment, f"127.0.0.1:{self.port}", dev_principals=True)
            await bound.start()
            return bound

        try:
            self._bound = self._run(bind())
        except BaseException:
            deployment.close()
            self._stop_loop()
            raise
        self.deployment = deployment
        self.port = self._bound.port
        self.target = f"127.0.0.1:{self.port}"
        wait_healthy(self.target, 10.0, None)
        return self

    def stop(self) -> None:
        """What SIGTERM does to `ecard serve`: drain the calls in flight, close the deployment."""
        bound, deployment = self._bound, self.deployment
        self._bound = self.deployment = None
        if bound is not None:
            self._run(bound.drain(self.grace_s))
        if deployment is not None:
            self._run(deployment.aclose())
            deployment.close()
        self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    def restart(self) -> InProcessServer:
        self.stop()
        return self.start()

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()
