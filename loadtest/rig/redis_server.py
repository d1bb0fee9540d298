"""A throwaway redis-server on a free loopback port, in a folder of its own, with no persistence unless
its arguments ask for it: `stop` is SIGKILL (a restart forgets every key it did not persist), `start`
brings it back on the same port and folder, `close` removes it (also on a failed start). RuntimeError
when it cannot be started. The rig's Redis Cluster is made of these (redis_cluster.py); the tests'
own Redis is one (tests/helpers/services.py)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

import redis

from ecard.testing import free_port


def wait_for(check: Callable[[], bool], failure: str, timeout: float, dead: Callable[[], bool] = lambda: False) -> None:
    """Until `check()` is true (a Redis error counts as not yet); RuntimeError(`failure`) past `timeout`
    seconds, or at once when `dead()`."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        if time.monotonic() > deadline or dead():
            raise RuntimeError(failure)
        time.sleep(0.05)


class RedisServer:
    """One redis-server process (see the module docstring)."""

    def __init__(self, *args: str) -> None:
        """`args`: more redis-server options ("--maxmemory", "20mb", ...)."""
        self.folder = tempfile.mkdtemp(prefix="ecard-redis-")
        self.port = free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.folder, *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: bool(self.client().ping()), f"redis-server did not start on port {self.port}", 10,
                 lambda: not self.alive)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
