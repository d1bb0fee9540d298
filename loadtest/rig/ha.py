"""PostgreSQL with a synchronous standby under Patroni (etcd as its store), on loopback ports, for the
failover test and `make ha-demo`. Debian's packages: postgresql, patroni, etcd-server.

    with PatroniCluster() as cluster:           # etcd + two nodes; one primary, one synchronous standby
        cluster.url                              # postgresql://...@h1:p1,h2:p2/postgres?target_session_attrs=read-write
        cluster.primary()                        # the node Patroni calls the leader
        cluster.kill(node)                       # SIGKILL its Patroni and its PostgreSQL: a machine gone
        cluster.wait_for_primary(other_than=node)

Everything runs in a temporary folder of its own (etcd's data, each node's data directory and logs) and is stopped and
removed by `close`, also when the body fails. PostgreSQL refuses to run as root, so Patroni runs as the
`postgres` user. Commits wait for the standby (synchronous_mode): an acknowledged transaction is on both
nodes, and Patroni promotes only the synchronous standby, so a failover loses none. Not strict: alone,
the new primary takes writes again at once (asynchronously until a standby rejoins) rather than
blocking them. The timings (ttl 8 s, loop 1 s) are a test's, not production's.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecard.testing import free_port


class RigError(RuntimeError):
    """An engine of the rig did not start or did not answer in time."""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RigError(f"{name} is not installed (Debian packages patroni and etcd-server)")
    return found


def _postgres_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise RigError("no PostgreSQL under /usr/lib/postgresql/*/bin")
    return os.path.dirname(found[-1])


def _processes_naming(text: str) -> list[int]:
    """The pids whose command line holds `text` (a node's data directory: its postmaster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid()]


@dataclass
class Node:
    name: str
    pg_port: int
    api_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.pg_port}"

    def role(self) -> str | None:
        """"primary", "replica" (Patroni's REST API), or None when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/patroni", timeout=1) as answer:
                role = str(json.loads(answer.read()).get("role"))
        except (OSError, ValueError):
            return None
        return "primary" if role == "master" else role  # Patroni 3.0 still says "master"

    def postgres_pids(self) -> list[int]:
        pid_file = self.folder / "data" / "postmaster.pid"
        try:
            return [int(pid_file.read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            return []


class PatroniCluster:
    def __init__(self, *, nodes: int = 2) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ecard-ha-"))  # owned by postgres below, removed by close
        self.scope = f"ecard-ha-{uuid.uuid4().hex[:8]}"
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.etcd: subprocess.Popen[bytes] | None = None
        self.nodes = [Node(f"node{i + 1}", free_port(), free_port(), self.folder / f"node{i + 1}")
                      for i in range(nodes)]
        self._logs: list[Any] = []

    @property
    def url(self) -> str:
        hosts = ",".join(node.address for node in self.nodes)
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write&connect_timeout=2"

    # -- start and stop ---------------------------------------------------------------------------------
    def __enter__(self) -> PatroniCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log(self, name: str) -> Any:
        handle = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 (closed in close)
        self._logs.append(handle)
        return handle

    def start(self, timeout: float = 90.0) -> None:
        shutil.chown(self.folder, "postgres", "postgres")
        etcd_log = self._log("etcd")
        self.etcd = subprocess.Popen(
            [_binary("etcd"), "--name", "etcd", "--data-dir", str(self.folder / "etcd"), "--enable-v2=true",
             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
             "--initial-cluster", f"etcd=http://127.0.0.1:{self.etcd_peer_port}"],
            stdout=etcd_log, stderr=subprocess.STDOUT)
        self._until(lambda: self._etcd_healthy() or None, timeout=20, what="etcd")
        for node in self.nodes:  # the first bootstraps the cluster; the second joins it as a standby
            self._start_node(node)
            if node is self.nodes[0]:
                self._until(lambda: self.nodes[0].role() == "primary" or None, timeout, "the first node as primary")
        self._until(lambda: self._synchronous_standby() or None, timeout, "a synchronous standby")

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=1) as answer:
                return bool(json.loads(answer.read()).get("health") in ("true", True))
        except (OSError, ValueError):
            return False

    def _config(self, node: Node) -> dict[str, Any]:
        trust = ["local all all trust", "host all all 127.0.0.1/32 trust",
                 "local replication all trust", "host replication all 127.0.0.1/32 trust"]
        return {
            "scope": self.scope, "name": node.name,
            "restapi": {"listen": f"127.0.0.1:{node.api_port}", "connect_address": f"127.0.0.1:{node.api_port}"},
            "etcd": {"host": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {"ttl": 8, "loop_wait": 1, "retry_timeout": 3, "maximum_lag_on_failover": 0,
                        "synchronous_mode": True, "synchronous_mode_strict": False,
                        "postgresql": {"use_pg_rewind": False, "parameters": {"wal_level": "replica",
                                                                           "hot_standby": "on", "max_wal_senders": 5,
                                                                           "max_replication_slots": 5}}},
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
                "pg_hba": trust,
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}", "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.folder / "data"), "bin_dir": _postgres_bin(),
                "pgpass": str(node.folder / "pgpass"),
                "authentication": {"superuser": {"username": "postgres"},
                                   "replication": {"username": "postgres"}},
                "parameters": {"unix_socket_directories": str(node.folder), "fsync": "on"},
                "pg_hba": trust,
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
        }

    def _start_node(self, node: Node) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(node.folder, "postgres", "postgres")
        config = node.folder / "patroni.json"  # JSON is YAML
        config.write_text(json.dumps(self._config(node)))
        shutil.chown(config, "postgres", "postgres")
        node.process = subprocess.Popen(["runuser", "-u", "postgres", "--", _binary("patroni"), str(config)],
                                        stdout=self._log(node.name), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def _synchronous_standby(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.primary().api_port}/cluster", timeout=1) as answer:
                members = json.loads(answer.read()).get("members", [])
        except (OSError, ValueError, RigError):
            return False
        return any(m.get("role") == "sync_standby" and m.get("state") in ("streaming", "running") for m in members)

    def close(self) -> None:
        for node in self.nodes:
            self.kill(node)
        if self.etcd is not None and self.etcd.poll() is None:
            self.etcd.kill()
            self.etcd.wait(10)
        for handle in self._logs:
            handle.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- what the test does -----------------------------------------------------------------------------
    def primary(self) -> Node:
        for node in self.nodes:
            if node.role() == "primary":
                return node
        raise RigError("no node is primary")

    def kill(self, node: Node) -> None:
        """The machine gone: SIGKILL to its Patroni (and its runuser) and to its PostgreSQL's processes."""
        if node.process is not None and node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)  # runuser, patroni
            node.process.wait(10)
        data = str(node.folder / "data")
        for pid in [*node.postgres_pids(), *_processes_naming(data)]:  # the postmaster and its children
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def wait_for_primary(self, *, other_than: Node | None = None, timeout: float = 60.0) -> Node:
        def promoted() -> Node | None:
            for node in self.nodes:
                if node is not other_than and node.role() == "primary":
                    return node
            return None

        return self._until(promoted, timeout, "a new primary")

    @staticmethod
    def _until(check: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise RigError(f"no {what} within {timeout:g} s")
            time.sleep(0.2)
