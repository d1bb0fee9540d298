"""Throwaway PostgreSQL and Redis servers of a test's own, to restart at will (never the machine's
shared services). Each runs on a free loopback port in a temporary folder and is removed at the end.
When one cannot be started, the test FAILS: CI runs as root with both installed."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from ecard.testing import free_port
from loadtest.rig.redis_cluster import RedisClusterRig
from loadtest.rig.redis_server import RedisServer


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"no PostgreSQL {name} under /usr/lib/postgresql/*/bin")
    return found[-1]


class OwnPostgres:
    """initdb + pg_ctl as the `postgres` user (PostgreSQL refuses root), socket in the folder."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="ecard-pg-")
        self.data = os.path.join(self.folder, "data")
        self.port = free_port()
        shutil.chown(self.folder, "postgres", "postgres")
        self._run(_postgres_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run(_postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "ecard")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/ecard"

    def _run(self, *command: str) -> None:
        result = subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True,
                                timeout=60)
        if result.returncode != 0:
            pytest.fail(f"{command[0]} failed: {result.stderr.strip()[-400:]}")

    def _ctl(self, *args: str) -> None:
        self._run(_postgres_bin("pg_ctl"), "-D", self.data, "-w", "-t", "30", *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._ctl("-o", options, "-l", os.path.join(self.folder, "log"), "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def close(self) -> None:
        with contextlib.suppress(BaseException):
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class OwnRedis(RedisServer):
    """redis-server on a free port, no persistence unless asked: a restart forgets every key
    (loadtest/rig/redis_server.py); the test FAILS when it cannot start."""

    def start(self) -> None:
        try:
            super().start()
        except RuntimeError as exc:
            pytest.fail(str(exc))


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def own_redis(*args: str) -> Iterator[OwnRedis]:
    server = OwnRedis(*args)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def own_redis_cluster(masters: int = 3) -> Iterator[RedisClusterRig]:
    """A Redis Cluster of the test's own (loadtest/rig/redis_cluster.py): the test FAILS if it cannot start."""
    try:
        rig = RedisClusterRig(masters)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"cannot start a Redis Cluster: {exc}")
    try:
        yield rig
    finally:
        rig.close()
