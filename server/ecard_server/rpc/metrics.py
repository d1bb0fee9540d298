"""Prometheus metrics: requests, latency and Verify verdicts by reason, per RPC; cache and nonce gauges.

The hot path only adds to a dictionary that belongs to the calling thread: no lock, no lost update,
about a tenth of what prometheus_client's own Counter.inc and Histogram.observe cost (each takes a
lock per value, and observe walks the buckets in Python). Prometheus reads the sum of every
thread's counts through a collector, under the same metric names, labels and types as before:

    ecard_rpc_requests_total{method,code}   ecard_rpc_latency_seconds{method} (histogram)
    ecard_rpc_errors_total{method,reason}   (the ErrorInfo reason of every call that did not end OK)
    ecard_verify_verdicts_total{reason}     ecard_card_cache_{hits,misses}_total (counters)
    ecard_card_cache_entries, ecard_nonces_held, ecard_redis_* (gauges)
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ecard.v1 import types_pb2
from ecard_server import build

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_REASON_NAMES = {value: name.removeprefix("REASON_") for name, value in types_pb2.Reason.items()}


class ThreadCounts:
    """Counts kept per thread and summed on demand: `add` never waits for another thread."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[dict[Any, float]] = []
        self._lock = threading.Lock()

    def mine(self) -> dict[Any, float]:
        """The calling thread's own counts (made on its first use)."""
        try:
            return self._local.counts  # type: ignore[no-any-return]
        except AttributeError:
            counts: dict[Any, float] = {}
            with self._lock:
                self._all.append(counts)
            self._local.counts = counts
            return counts

    def totals(self) -> dict[Any, float]:
        with self._lock:
            shards = list(self._all)
        total: dict[Any, float] = {}
        for shard in shards:
            for key, value in shard.copy().items():  # dict.copy is atomic under the GIL
                total[key] = total.get(key, 0) + value
        return total


COUNTS = ThreadCounts()
_mine = COUNTS.mine


class MethodMetrics:
    """The keys of one RPC method, made once when its handler is wrapped."""

    __slots__ = ("_buckets", "_codes", "_reasons", "_sum", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._codes: dict[str, tuple[str, str, str]] = {}
        self._reasons: dict[str, tuple[str, str, str]] = {}
        self._buckets = [("bucket", name, i) for i in range(len(LATENCY_BUCKETS) + 1)]
        self._sum = ("sum", name)

    def finished(self, code: str, seconds: float, reason: str | None = None) -> None:
        """One call that ended with `code` ("OK" or a grpc.StatusCode name) after `seconds`; a call that
        failed with a domain error also gives its ErrorInfo `reason` (what an alert or a runbook needs:
        NONCE_STORE_UNAVAILABLE, RATE_LIMITED, ... rather than only UNAVAILABLE)."""
        key = self._codes.get(code)
        if key is None:
            key = self._codes.setdefault(code, ("requests", self.name, code))
        counts = _mine()
        counts[key] = counts.get(key, 0) + 1
        bucket = self._buckets[bisect_left(LATENCY_BUCKETS, seconds)]
        counts[bucket] = counts.get(bucket, 0) + 1
        counts[self._sum] = counts.get(self._sum, 0.0) + seconds
        if reason is not None:
            error = self._reasons.get(reason)
            if error is None:
                error = self._reasons.setdefault(reason, ("errors", self.name, reason))
            counts[error] = counts.get(error, 0) + 1


_VERDICT_KEYS = {reason: ("verdict", reason) for reason in _REASON_NAMES}


def verdict(reason: int) -> None:
    """One Verify answer (of a unary call, a stream or a batch item) with this reason."""
    key = _VERDICT_KEYS[reason]
    counts = _mine()
    counts[key] = counts.get(key, 0) + 1


def verdicts(reasons: list[int]) -> None:
    """Many Verify answers at once (a batch)."""
    counts = _mine()
    for reason in reasons:
        key = _VERDICT_KEYS[reason]
        counts[key] = counts.get(key, 0) + 1


Snapshot = dict[str, Any]
"""What one process counted, in plain JSON types:
{"counts": [[key, value], ...], "gauges": {name: [help, value]}, "counters": {name: [help, value]}}."""


def snapshot() -> Snapshot:
    """This process's counts and watched readings (what a `--workers` parent sums into one /metrics)."""
    watched: dict[str, dict[str, list[Any]]] = {"gauges": {}, "counters": {}}
    for name, (help_text, read, kind) in list(_COLLECTOR.watched.items()):
        watched["counters" if kind == "counter" else "gauges"][name] = [help_text, read()]
    return {"counts": [[list(key), value] for key, value in COUNTS.totals().items()], **watched}


def families(snapshots: list[Snapshot], *, workers: list[int] | None = None) -> Iterator[Any]:
    """The metric families of the sum of `snapshots`' counts. Gauges are not summed (a hit ratio is not
    additive): one process's as they are, or, given the worker number of each snapshot, each worker's
    under a `worker` label."""
    totals: dict[Any, float] = {}
    for shot in snapshots:
        for key, value in shot["counts"]:
            key = tuple(key)
            totals[key] = totals.get(key, 0) + value
    requests = CounterMetricFamily("ecard_rpc_requests", "Finished RPCs", labels=["method", "code"])
    errors = CounterMetricFamily("ecard_rpc_errors", "Failed RPCs by ErrorInfo reason", labels=["method", "reason"])
    verdict_family = CounterMetricFamily("ecard_verify_verdicts", "Verify verdicts by reason", labels=["reason"])
    latency = HistogramMetricFamily("ecard_rpc_latency_seconds", "Server-side RPC latency", labels=["method"])
    methods: set[str] = set()
    for key, value in sorted(totals.items(), key=repr):
        if key[0] == "requests":
            requests.add_metric([key[1], key[2]], value)
            methods.add(key[1])
        elif key[0] == "errors":
            errors.add_metric([key[1], key[2]], value)
        elif key[0] == "verdict":
            verdict_family.add_metric([_REASON_NAMES[key[1]]], value)
    for method in sorted(methods):
        cumulative, buckets = 0.0, []
        for i, bound in enumerate([*LATENCY_BUCKETS, float("inf")]):
            cumulative += totals.get(("bucket", method, i), 0)
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency.add_metric([method], buckets, totals.get(("sum", method), 0.0))
    yield _build_info()
    yield requests
    yield errors
    yield verdict_family
    yield latency
    counter_names = sorted({name for shot in snapshots for name in shot.get("counters", {})})
    for name in counter_names:  # counters add up over the workers, like the request counts
        present = [shot["counters"][name] for shot in snapshots if name in shot.get("counters", {})]
        counter = CounterMetricFamily(name.removesuffix("_total"), present[0][0])
        counter.add_metric([], sum(value for _, value in present))
        yield counter
    names = sorted({name for shot in snapshots for name in shot["gauges"]})
    for name in names:
        help_text = next(shot["gauges"][name][0] for shot in snapshots if name in shot["gauges"])
        gauge = GaugeMetricFamily(name, help_text, labels=["worker"] if workers is not None else None)
        for index, shot in enumerate(snapshots):
            if name in shot["gauges"]:
                gauge.add_metric([str(workers[index])] if workers is not None else [], shot["gauges"][name][1])
        yield gauge


def _build_info() -> GaugeMetricFamily:
    """ecard_build_info{version, python, grpcio, protobuf} 1: what runs, for dashboards and alerts."""
    labels = build.info()
    family = GaugeMetricFamily("ecard_build_info", "The ecard version and what it runs on (always 1)",
                               labels=sorted(labels))
    family.add_metric([labels[name] for name in sorted(labels)], 1.0)
    return family


class _Collector(Collector):
    def __init__(self) -> None:
        self.watched: dict[str, tuple[str, Callable[[], float], str]] = {}

    def collect(self) -> Iterator[Any]:
        return families([snapshot()])


_COLLECTOR = _Collector()
REGISTRY.register(_COLLECTOR)


def watch(name: str, help_text: str, read: Callable[[], float], *, counter: bool = False) -> None:
    """A gauge (or, with `counter`, a counter whose name ends in _total) read when Prometheus scrapes
    (the latest `watch` of a name wins: one deployment per process)."""
    _COLLECTOR.watched[name] = (help_text, read, "counter" if counter else "gauge")
