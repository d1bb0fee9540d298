"""One /metrics for `ecard serve --workers N`, on the --metrics-listen port, served by the parent.

A socket pair per worker is made before the fork. When Prometheus scrapes, the parent asks each worker
for its counts (one byte out; a length-prefixed JSON snapshot back, made by a thread of the worker
from its per-thread counts) and serves their sum: counters and histograms add up over the workers;
gauges (a cache's hit ratio is not additive) are served per worker, with a `worker` label.
`ecard_workers_reporting` says how many workers this scrape sums (of `ecard_workers_configured`), and
`ecard_worker_rpc_requests_total{worker}` how the calls spread over them. The hot path is untouched: a
worker counts exactly as it does alone, and only pays for a snapshot when it is scraped.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ecard_server.logs import event
from ecard_server.metrics_http import serve_metrics
from ecard_server.rpc import metrics

log = logging.getLogger("ecard.metrics")
ANSWER_SECONDS = 5.0  # a worker that takes longer to count is left out of scrapes from then on
_LENGTH = struct.Struct("!I")


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 16))
        if not chunk:
            raise ConnectionError("worker closed its metrics link")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _answer_scrapes(sock: socket.socket) -> None:
    """The worker's side: a snapshot for every byte the parent sends, until the parent is gone."""
    try:
        while sock.recv(1):
            body = json.dumps(metrics.snapshot()).encode()
            sock.sendall(_LENGTH.pack(len(body)) + body)
    except OSError:
        pass


class WorkerLinks:
    """The socket pairs between the parent and its workers; made before forking."""

    def __init__(self, workers: int) -> None:
        self._pairs = [socket.socketpair() for _ in range(workers)]
        self._alive = [True] * workers
        self._lock = threading.Lock()

    def in_worker(self, worker: int) -> None:
        """In the forked worker: keeps its own end, closes every other, answers scrapes on a thread."""
        for number, (parent_end, worker_end) in enumerate(self._pairs):
            parent_end.close()
            if number != worker:
                worker_end.close()
        own = self._pairs[worker][1]
        threading.Thread(target=_answer_scrapes, args=(own,), name="metrics-link", daemon=True).start()

    def in_parent(self) -> None:
        """In the parent, once every worker is forked: the workers' ends are theirs alone."""
        for parent_end, worker_end in self._pairs:
            worker_end.close()
            parent_end.settimeout(ANSWER_SECONDS)

    @property
    def count(self) -> int:
        """How many workers there are (answering or not)."""
        return len(self._pairs)

    def gather(self) -> tuple[list[int], list[metrics.Snapshot]]:
        """(worker numbers, their snapshots) of the workers that answered."""
        numbers: list[int] = []
        shots: list[metrics.Snapshot] = []
        with self._lock:  # one scrape at a time: answers on a link come back in order
            for number, (parent_end, _) in enumerate(self._pairs):
                if not self._alive[number]:
                    continue
                try:
                    parent_end.sendall(b"?")
                    (size,) = _LENGTH.unpack(_read_exactly(parent_end, _LENGTH.size))
                    shots.append(json.loads(_read_exactly(parent_end, size)))
                    numbers.append(number)
                except (OSError, ValueError) as exc:  # a late answer would desynchronise the link
                    self._alive[number] = False
                    event(log, "metrics_worker_silent", worker=number, error=type(exc).__name__)
        return numbers, shots


class _WorkersCollector(Collector):
    def __init__(self, links: WorkerLinks) -> None:
        self._links = links

    def collect(self) -> Iterator[Any]:
        numbers, shots = self._links.gather()
        yield from metrics.families(shots, workers=numbers)
        per_worker = CounterMetricFamily("ecard_worker_rpc_requests", "Finished RPCs of each worker process",
                                         labels=["worker"])
        for number, shot in zip(numbers, shots, strict=True):
            per_worker.add_metric([str(number)], sum(value for key, value in shot["counts"] if key[0] == "requests"))
        yield per_worker
        reporting = GaugeMetricFamily("ecard_workers_reporting", "Worker processes whose counts this scrape sums")
        reporting.add_metric([], len(shots))
        yield reporting
        configured = GaugeMetricFamily("ecard_workers_configured", "Worker processes this server was started with")
        configured.add_metric([], self._links.count)
        yield configured


def check_bindable(address: str) -> None:
    """Raises ValueError (one line) when `address` (HOST:PORT) cannot be listened on now."""
    host, _, port = address.rpartition(":")
    try:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server will
            probe.bind((host or "127.0.0.1", int(port)))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot serve metrics on {address}: {exc}") from None


def serve_aggregated(address: str, links: WorkerLinks) -> None:
    """Serves the workers' summed metrics on `address` (HOST:PORT) from a thread of the parent."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WorkersCollector(links))
    serve_metrics(address, registry)
