"""Network namespaces on a bridge, and a Unix-socket relay, for replicas that must not share loopback.

`Network(size).up()` makes a bridge with the host-side address 10.231.N.1/24 and `size` namespaces,
each joined to it by a veth pair and holding 10.231.N.(i+2)/24; the namespaces have no route beyond
that subnet. N and the names come from the pid (and the first free subnet), so parallel runs do not
collide. `down()` removes what `up()` made, newest first, and is safe to call twice (and at exit).
`UnixRelay` serves a Unix socket (which crosses network namespaces) and relays each connection to a
TCP address of the host (Redis or PostgreSQL on 127.0.0.1). Needs root and iproute2; without them
every call raises NetworkError.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import threading
from pathlib import Path

SUBNET_PREFIX = "10.231"


class NetworkError(RuntimeError):
    """An `ip` command failed: not root, no iproute2, or no network namespaces in this kernel."""


def _ip(*args: str) -> None:
    try:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise NetworkError(f"ip {' '.join(args)}: {detail.strip()} (network namespaces need root)") from None


def _subnets_in_use() -> set[int]:
    """Third octets of the 10.231.x.0/24 networks already on this host (another run's bridges)."""
    out = subprocess.run(["ip", "-o", "-4", "addr"], check=True, capture_output=True, text=True).stdout
    return {int(word.split(".")[2]) for word in out.split() if word.startswith(f"{SUBNET_PREFIX}.")}


class Network:
    """A bridge and `size` namespaces, each with one address on it. `down()` is safe to call twice."""

    def __init__(self, size: int) -> None:
        pid = os.getpid()
        used = _subnets_in_use()
        self.subnet = next(n for n in [*range(pid % 250 + 1, 251), *range(1, 251)] if n not in used)
        self.tag = f"{pid % 100000}{self.subnet}"[-9:]
        self.bridge = f"ecbr{self.tag}"
        self.namespaces = [f"ecard-{self.tag}-{i}" for i in range(size)]
        self.host_address = f"{SUBNET_PREFIX}.{self.subnet}.1"
        self.addresses = [f"{SUBNET_PREFIX}.{self.subnet}.{i + 2}" for i in range(size)]
        self._made: list[tuple[str, ...]] = []  # teardown commands, newest last

    def up(self) -> Network:
        atexit.register(self.down)
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._made.append(("link", "del", self.bridge))
            _ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, (namespace, address) in enumerate(zip(self.namespaces, self.addresses, strict=True)):
                self._namespace(i, namespace, address)
        except BaseException:
            self.down()
            raise
        return self

    def _namespace(self, i: int, namespace: str, address: str) -> None:
        host_end, inner_end = f"ecv{self.tag}{i}", f"ecp{self.tag}{i}"
        _ip("netns", "add", namespace)
        self._made.append(("netns", "del", namespace))
        _ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end)
        self._made.append(("link", "del", host_end))  # gone with the namespace once moved; harmless
        _ip("link", "set", host_end, "master", self.bridge)
        _ip("link", "set", host_end, "up")
        _ip("link", "set", inner_end, "netns", namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "link", "set", inner_end, "name", "eth0")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")

    def down(self) -> None:
        while self._made:
            with contextlib.suppress(NetworkError):
                _ip(*self._made.pop())


class UnixRelay:
    """Relays connections on a Unix socket at `path` to a TCP `upstream`, in threads of this process."""

    def __init__(self, path: str | Path, upstream: tuple[str, int]) -> None:
        self.path, self.upstream = str(path), upstream
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        os.chmod(self.path, 0o666)
        self._listener.listen(256)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="unix-relay").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                if self._listener.fileno() < 0:
                    return
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._open.difference_update((source, sink))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
