"""TLS handshakes on the mTLS port, failed ones included, counted from what the process can see.

grpcio has no hook for a failed handshake (its core counts them, `grpc.server.tls.handshakes`, for
the C++ OpenTelemetry plugin only; Python's grpcio-observability exports per-call metrics, and not
for grpc.aio). Two things it does show, and their difference:

- begun: gRPC asks the dynamic TLS credentials' fetcher (tls.ServerTls.configuration) for the
  certificate once before every handshake, so each call is one connection accepted on the TLS port;
- completed: a handshake that succeeds becomes a connection of the server, which channelz lists (with
  its TLS `security`) while it is open; its socket ids are handed out in order as listings first see
  them, so a listing from the last id seen on shows exactly the new ones;
- failed: begun, and no connection within the server's handshake timeout (gRPC ends the handshake
  then, if the peer has not): a client certificate from another CA, none, plaintext or HTTP/1 on the
  TLS port, a client that does not trust the server's certificate (it hangs up), a bare TCP connect.

Channelz is read when a handshake has begun since the last reading: at the first call after it
(`call_seen`, from rpc.auth: the call's connection is open while it runs), twice a second while any
handshake is unsettled, and at each scrape. A handshake that succeeds and whose connection closes
without a single call before the next reading (a bare TLS probe that hangs up at once) is counted as
failed: docs/operations.md says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from grpc._cython import cygrpc  # type: ignore[attr-defined]  # channelz, as grpcio-channelz reads it

HANDSHAKE_TIMEOUT_S = 10.0
"""How long a TLS handshake may take on the server (`grpc.server_handshake_timeout_ms`, app.transport_options)."""
READ_EVERY_S = 0.5  # channelz is read this often while a handshake is unsettled
_SERVERS_EVERY_S = 1.0  # the process's gRPC servers are listed again at most this often
_PAGE = 100


def _servers() -> list[int]:
    return [int(server["ref"]["serverId"]) for server in json.loads(cygrpc.channelz_get_servers(0)).get("server", [])]


def _sockets_from(server_id: int, first: int) -> Iterator[int]:
    """Ids of the server's open connections from socket id `first` on, ascending (none once it is gone)."""
    while True:
        try:
            page = json.loads(cygrpc.channelz_get_server_sockets(server_id, first, _PAGE))
        except ValueError:  # the server was stopped
            return
        ids = [int(ref["socketId"]) for ref in page.get("socketRef", [])]
        yield from ids
        if page.get("end", True) or not ids:
            return
        first = ids[-1] + 1


def _is_tls(socket_id: int) -> bool | None:
    """Whether the connection is TLS; None when it closed before it could be asked."""
    try:
        return "security" in json.loads(cygrpc.channelz_get_socket(socket_id)).get("socket", {})
    except ValueError:
        return None


class HandshakeTally:
    """The TLS handshakes of this process: begun, completed, failed (see the module docstring)."""

    def __init__(self, timeout_s: float = HANDSHAKE_TIMEOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.begun = 0
        self.completed = 0
        self.failed = 0
        self._timeout = timeout_s
        self._clock = clock
        self._unsettled: deque[float] = deque()  # when each handshake neither completed nor failed began
        self._read_at = 0  # `begun` at the last reading
        self._last_socket: dict[int, int] = {}  # server id -> the highest socket id seen
        self._tls_server: dict[int, bool] = {}
        self._servers: list[int] = []
        self._servers_at = -_SERVERS_EVERY_S
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def began(self) -> None:
        """A handshake begins (gRPC's fetcher thread)."""
        with self._lock:
            self.begun += 1
            self._unsettled.append(self._clock())

    def call_seen(self) -> None:
        """A call under mTLS: its connection's handshake completed, and it is open now."""
        if self.begun != self._read_at:
            self.read()

    def read(self) -> None:
        """Reads channelz: new TLS connections complete the oldest unsettled handshakes; handshakes
        unsettled for longer than the timeout have failed."""
        with self._lock:
            self._read_at = self.begun
            new = self._new_connections()
            self.completed += new
            for _ in range(min(new, len(self._unsettled))):
                self._unsettled.popleft()
            expired = self._clock() - self._timeout
            while self._unsettled and self._unsettled[0] < expired:
                self._unsettled.popleft()
                self.failed += 1

    def _new_connections(self) -> int:
        now = self._clock()
        if now - self._servers_at >= _SERVERS_EVERY_S:
            self._servers, self._servers_at = _servers(), now
        new = 0
        for server in self._servers:
            last = self._last_socket.get(server, 0)
            for socket_id in _sockets_from(server, last + 1):
                last = socket_id
                if server not in self._tls_server:  # every connection of a server shares its credentials
                    kind = _is_tls(socket_id)
                    if kind is None:
                        continue
                    self._tls_server[server] = kind
                new += self._tls_server[server]
            self._last_socket[server] = last
        return new

    def watch(self) -> None:
        """Reads twice a second while a handshake is unsettled, on a thread of its own (until `stop`)."""

        def run() -> None:
            while not self._stop.wait(READ_EVERY_S):
                if self._unsettled or self.begun != self._read_at:
                    self.read()

        threading.Thread(target=run, name="ecard-tls-handshakes", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def counts(self) -> dict[str, float]:
        """begun, completed and failed, as of a reading now (for /metrics)."""
        self.read()
        return {"begun": self.begun, "completed": self.completed, "failed": self.failed}


_current: HandshakeTally | None = None


def install(tally: HandshakeTally) -> None:
    """Makes `tally` the process's (the TLS server's; the latest wins, one server per process)."""
    global _current
    _current = tally


def call_seen() -> None:
    """rpc.auth's hook on every call of an mTLS server."""
    tally = _current
    if tally is not None:
        tally.call_seen()
