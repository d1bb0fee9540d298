"""A `--workers` parent killed with SIGKILL (no handler runs) leaves no orphan worker serving the port:
each worker asked Linux for a signal at its parent's death and drains like on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import uuid
from pathlib import Path

import pytest

from ecard.testing import EcardServer
from tests.helpers.deployment import children_of, config_file
from tests.helpers.polling import until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"


def test_workers_stop_when_their_parent_is_killed(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    config = config_file(tmp_path, f"ecard-test-{uuid.uuid4().hex[:12]}")
    server = EcardServer(db=pg_url, redis=redis_url, extra_args=["--workers", "2", "--config", config, "--grace", "2"])
    with server:
        assert server.process is not None
        workers, _ = until(lambda: children_of(server.process.pid) if len(children_of(server.process.pid)) == 2
                           else None, within=10, what="two workers")
        try:
            server.process.kill()
            server.process.wait(10)
            _, seconds = until(lambda: True if not any(alive(pid) for pid in workers) else None, within=15,
                               what="the orphaned workers to exit")
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", server.port)) != 0, "something still serves the port"
        finally:  # a failure leaves no orphans behind either
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    print(f"orphaned workers gone {seconds:.2f} s after the parent's SIGKILL")
