"""Readiness: the standard gRPC health status follows the services a deployment depends on.

While PostgreSQL or Redis does not answer, every health service name ("" and each ecard service)
reports NOT_SERVING, so a load balancer or Kubernetes readiness probe sends calls elsewhere; once
both answer again it reports SERVING, without a restart. The embedded default (SQLite, nonces in
memory) has nothing outside the process to watch. The gauge `ecard_serving` (1 or 0) says the same
to Prometheus. Runs on the server's event loop:

    watcher = Readiness.of(deployment, bound.health, bound.service_names)
    watcher.start()            # after bound.start()
    await watcher.stop()       # before bound.drain(): draining reports NOT_SERVING for good
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from grpc_health.v1 import health, health_pb2

from ecard_server.logs import event
from ecard_server.rpc import metrics

log = logging.getLogger("ecard.server")

Probe = Callable[[], Awaitable[object]]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Readiness:
    """Probes each dependency every `interval` seconds (each probe bounded by `timeout`) and sets the
    health status of every name in `names` when the answer changes. A dependency is down after
    `misses` probes in a row failed (one slow answer on a loaded host does not pull a replica out of
    rotation), and up again at its first answer."""

    def __init__(
        self, health_servicer: health.aio.HealthServicer, names: Sequence[str], probes: dict[str, Probe], *,
        interval: float = 0.5, timeout: float = 1.5, misses: int = 2,
    ) -> None:
        self._health = health_servicer
        self._names = ["", *names]
        self._probes = probes
        self._interval = interval
        self._timeout = timeout
        self._misses = misses
        self._missed: dict[str, int] = dict.fromkeys(probes, 0)  # failed probes in a row
        self._pending: dict[str, asyncio.Task[object]] = {}  # a probe still running is not started twice
        self._task: asyncio.Task[None] | None = None
        self.down: frozenset[str] = frozenset()

    @classmethod
    def of(cls, deployment: Any, health_servicer: health.aio.HealthServicer, names: Sequence[str]) -> Readiness:
        """The probes of a deployment: its store unless it is a local file, Redis when there is one."""
        probes: dict[str, Probe] = {}
        store = deployment.store
        if store.backend != "sqlite":
            probes[store.backend] = lambda: asyncio.to_thread(store.rows, "SELECT 1")
        ping = getattr(deployment.nonces, "ping_async", None)
        if ping is not None:
            probes["redis"] = ping
        return cls(health_servicer, names, probes)

    async def _answers(self, name: str) -> bool:
        task = self._pending.get(name)
        if task is None:
            task = self._pending[name] = asyncio.ensure_future(self._probes[name]())
        try:
            await asyncio.wait_for(asyncio.shield(task), self._timeout)
        except TimeoutError:
            return False  # still running: asked again next round, not started again
        except Exception:
            self._pending.pop(name, None)
            return False
        self._pending.pop(name, None)
        return True

    async def check(self) -> frozenset[str]:
        """Probes every dependency once; sets the health status if what is down changed. Returns what is down."""
        names = list(self._probes)
        answers = await asyncio.gather(*(self._answers(name) for name in names))
        for name, ok in zip(names, answers, strict=True):
            self._missed[name] = 0 if ok else self._missed[name] + 1
        down = frozenset(name for name in names if self._missed[name] >= self._misses)
        if down != self.down:
            self.down = down
            status = NOT_SERVING if down else SERVING
            for name in self._names:
                await self._health.set(name, status)
            event(log, "readiness", serving=not down, down=sorted(down))
        return down

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        metrics.watch("ecard_serving", "1 while the health status is SERVING (every dependency answers), else 0",
                      lambda: 0.0 if self.down else 1.0)
        if self._probes and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ecard-readiness")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pending in self._pending.values():
            pending.cancel()
        self._pending.clear()
