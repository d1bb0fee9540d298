"""Raw HTTP/2 floods of an unauthenticated caller, written with the h2 library (no gRPC client in the way),
for the pre-authentication resource tests. Loopback only; every flood is bounded in count and time.

    python tests/h2_attacks.py KIND TARGET [N] [SECONDS]

KIND: unfinished (N streams each announcing an 8 MB VerifyBatch and sending as much of it as the server's
flow control lets through, kept open for SECONDS), idle (N streams of headers only, on one connection),
empty-batch (N VerifyBatch calls of 8 MB of empty items, one after another), reset (N request-then-reset
pairs on one connection), ping (N PING frames on one connection, no call open). Prints one JSON line of
what the server answered.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

BATCH = "/ecard.v1.Verifier/VerifyBatch"
VERIFY = "/ecard.v1.Verifier/Verify"
EIGHT_MB = 8 << 20


def grpc_frame(payload: bytes, announced: int | None = None) -> bytes:
    """A gRPC length-prefixed message (uncompressed); `announced` may claim more than is there."""
    return struct.pack(">BI", 0, len(payload) if announced is None else announced) + payload


class RawConnection:
    """One HTTP/2 connection, as a hostile client drives it: it opens streams without waiting for the
    server's SETTINGS (so the client side never limits itself), and reads only when told to."""

    def __init__(self, target: str, *, timeout: float = 10.0) -> None:
        host, port = target.rsplit(":", 1)
        self.target = target
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 30, h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.reset: dict[int, int] = {}  # stream id -> error code of the server's RST_STREAM
        self.ended: dict[int, str] = {}  # stream id -> grpc-status of its trailers
        self.goaway: int | None = None
        self.closed = False
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def open_stream(self, path: str, *, end: bool = False, principal: str | None = None) -> int:
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", self.target),
                   ("content-type", "application/grpc"), ("te", "trailers")]
        if principal:
            headers.append(("x-ecard-principal", principal))
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers, end_stream=end)
        return stream_id

    def send(self, stream_id: int, data: bytes, *, end: bool = False) -> int:
        """Sends what flow control allows of `data` now; returns how many bytes went."""
        try:
            room = min(len(data), self.conn.local_flow_control_window(stream_id))
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return 0
        sent = 0
        while sent < room:
            size = min(room - sent, self.conn.max_outbound_frame_size)
            last = end and sent + size == len(data)
            self.conn.send_data(stream_id, data[sent:sent + size], end_stream=last)
            sent += size
        if end and not data:
            self.conn.end_stream(stream_id)
        self.flush()
        return sent

    def pump(self, seconds: float) -> list[Any]:
        """Reads what the server sends for up to `seconds` (acknowledging as h2 does); returns the events."""
        deadline = time.monotonic() + seconds
        seen: list[Any] = []
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                break
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.closed = True
                break
            for event in events:
                if isinstance(event, h2.events.StreamReset):
                    self.reset[event.stream_id] = int(event.error_code)
                elif isinstance(event, h2.events.TrailersReceived):
                    self.ended[event.stream_id] = dict(event.headers).get("grpc-status", "")
                elif isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers).get("grpc-status")
                    if status is not None:
                        self.ended[event.stream_id] = status
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = int(event.error_code)
            seen += events
            self.flush()
        return seen

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self.closed = True


def unfinished(target: str, streams: int, seconds: float) -> dict[str, Any]:
    """`streams` VerifyBatch messages announcing 8 MB each, fed as fast as the server's windows open,
    never finished; the connections stay open for `seconds`."""
    per_connection = 50
    conns, sent, opened = [], 0, 0
    deadline = time.monotonic() + seconds
    chunk = b"\x0a\x00" * (1 << 15)  # empty items: valid protobuf, so nothing ends the message early
    while opened < streams:
        conn = RawConnection(target)
        ids = []
        for _ in range(min(per_connection, streams - opened)):
            stream_id = conn.open_stream(BATCH)
            conn.send(stream_id, grpc_frame(b"", announced=EIGHT_MB))
            ids.append(stream_id)
            opened += 1
        conns.append((conn, ids))
    progress = {id(c): dict.fromkeys(ids, 0) for c, ids in conns}
    while time.monotonic() < deadline:
        moved = 0
        for conn, ids in conns:
            conn.pump(0.01)
            for stream_id in ids:
                if stream_id in conn.reset or stream_id in conn.ended or progress[id(conn)][stream_id] >= EIGHT_MB - 1:
                    continue
                want = min(len(chunk), EIGHT_MB - 1 - progress[id(conn)][stream_id])
                n = conn.send(stream_id, chunk[:want])
                progress[id(conn)][stream_id] += n
                moved += n
        sent += moved
        if not moved:
            time.sleep(0.05)
    refused = sum(len(set(c.reset) | set(c.ended)) for c, _ in conns)
    statuses = sorted({s for c, _ in conns for s in c.ended.values()})
    for conn, _ in conns:
        conn.close()
    return {"kind": "unfinished", "streams": opened, "bytes_sent": sent, "refused": refused, "statuses": statuses}


def idle(target: str, streams: int, seconds: float) -> dict[str, Any]:
    """`streams` streams of headers only (a Verify never sent), on one connection, held for `seconds`."""
    conn = RawConnection(target)
    for _ in range(streams):
        conn.open_stream(VERIFY)
    conn.flush()
    conn.pump(seconds)
    answered = set(conn.reset) | set(conn.ended)
    statuses: dict[str, int] = {}
    for stream_id in answered:
        key = conn.ended.get(stream_id) or f"reset:{conn.reset[stream_id]}"
        statuses[key] = statuses.get(key, 0) + 1
    result = {"kind": "idle", "streams": streams, "answered": statuses, "goaway": conn.goaway,
              "held_open": streams - len(answered),
              "max_concurrent_streams": conn.conn.remote_settings.max_concurrent_streams}
    conn.close()
    return result


def empty_batch(target: str, calls: int, seconds: float) -> dict[str, Any]:
    """`calls` unauthenticated VerifyBatch calls of 8 MB of empty items each, one after another."""
    message = grpc_frame(b"\x0a\x00" * (EIGHT_MB // 2 - 3))
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    for _ in range(calls):
        if time.monotonic() > deadline:
            break
        conn = RawConnection(target)
        stream_id = conn.open_stream(BATCH)
        sent = 0
        while sent < len(message) and not conn.closed and stream_id not in conn.reset and stream_id not in conn.ended:
            n = conn.send(stream_id, message[sent:], end=True)
            sent += n
            conn.pump(0.001 if n else 0.05)
            if time.monotonic() > deadline:
                break
        end = time.monotonic() + 5
        while not (stream_id in conn.ended or stream_id in conn.reset or conn.closed) and time.monotonic() < end:
            conn.pump(0.1)
        key = conn.ended.get(stream_id) or f"reset:{conn.reset.get(stream_id)}"
        statuses[key] = statuses.get(key, 0) + 1
        conn.close()
    return {"kind": "empty-batch", "statuses": statuses}


def reset(target: str, pairs: int, seconds: float) -> dict[str, Any]:
    """`pairs` of (HEADERS of a Verify, RST_STREAM CANCEL) on one connection, as fast as it goes."""
    conn = RawConnection(target)
    deadline = time.monotonic() + seconds
    sent = 0
    while sent < pairs and not conn.closed and conn.goaway is None and time.monotonic() < deadline:
        for _ in range(min(100, pairs - sent)):
            try:
                stream_id = conn.open_stream(VERIFY)
                conn.conn.reset_stream(stream_id, error_code=8)  # CANCEL
            except h2.exceptions.ProtocolError:
                break
            sent += 1
        conn.flush()
        conn.pump(0)
    conn.pump(1.0)
    result = {"kind": "reset", "pairs_sent": sent, "goaway": conn.goaway, "closed": conn.closed}
    conn.close()
    return result


def ping(target: str, pings: int, seconds: float) -> dict[str, Any]:
    """`pings` PING frames on one connection with no call open, as fast as it goes (each asks the server
    for a PING ACK); counts the acknowledgements until the server sends GOAWAY or closes."""
    conn = RawConnection(target)
    deadline = time.monotonic() + seconds
    sent = acked = 0
    while sent < pings and not conn.closed and conn.goaway is None and time.monotonic() < deadline:
        for _ in range(min(100, pings - sent)):
            conn.conn.ping(struct.pack(">Q", sent))
            sent += 1
        conn.flush()
        acked += sum(isinstance(e, h2.events.PingAckReceived) for e in conn.pump(0))
    acked += sum(isinstance(e, h2.events.PingAckReceived) for e in conn.pump(1.0))
    result = {"kind": "ping", "pings_sent": sent, "acked": acked, "goaway": conn.goaway, "closed": conn.closed}
    conn.close()
    return result


KINDS = {"unfinished": unfinished, "idle": idle, "empty-batch": empty_batch, "reset": reset, "ping": ping}

if __name__ == "__main__":
    kind, target = sys.argv[1], sys.argv[2]
    if not target.startswith(("127.", "localhost", "[::1]")):
        sys.exit("loopback targets only")
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    print(json.dumps(KINDS[kind](target, count, seconds)), flush=True)
