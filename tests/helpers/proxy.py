"""A loopback TCP relay in the test process, to play an outage of PostgreSQL or Redis between a server
under test and the service, without stopping the machine's shared services."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from ecard.testing import free_port


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
        # hold(): bytes in that direction wait in the relay (nothing is lost) until release()
        self._gates = {"up": threading.Event(), "down": threading.Event()}
        for gate in self._gates.values():
            gate.set()
        self.held = {"up": 0, "down": 0}  # bytes that arrived while held, per direction
        self.restore()

    def hold(self, direction: str = "up") -> None:
        """Holds what the clients send ("up") or what the upstream answers ("down") until release()."""
        self.held[direction] = 0
        self._gates[direction].clear()

    def release(self) -> None:
        for gate in self._gates.values():
            gate.set()

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
        self.release()  # a held pump wakes to find its sockets closed
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
            for source, sink, direction in ((client, server, "up"), (server, client, "down")):
                threading.Thread(target=self._pump, args=(source, sink, direction), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str = "up") -> None:
        gate = self._gates[direction]
        try:
            while data := source.recv(65536):
                if not gate.is_set():
                    self.held[direction] += len(data)
                    gate.wait()
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
