"""Prometheus metrics: requests, latency and Verify verdicts by reason, per RPC."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ecard.v1 import types_pb2

RPC_REQUESTS = Counter("ecard_rpc_requests", "Finished RPCs", ["method", "code"])
RPC_LATENCY = Histogram(
    "ecard_rpc_latency_seconds",
    "Server-side RPC latency",
    ["method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
VERDICTS = Counter("ecard_verify_verdicts", "Verify verdicts by reason", ["reason"])
CARD_CACHE_HIT_RATIO = Gauge("ecard_card_cache_hit_ratio", "Share of card lookups served from memory")

# Bound children, so the hot path does no label lookups.
VERDICT_BY_REASON = {
    value: VERDICTS.labels(name.removeprefix("REASON_")) for name, value in types_pb2.Reason.items()
}
