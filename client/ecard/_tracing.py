"""W3C trace context on every unary call, when OpenTelemetry's API is installed: the server's span of
the call (ecard_server.tracing) becomes a child of the caller's current span. Without the package, or
outside any span, the metadata is left as it is."""

from __future__ import annotations

import importlib
from types import ModuleType

propagate: ModuleType | None
try:
    propagate = importlib.import_module("opentelemetry.propagate")
except ImportError:  # the SDK does not need OpenTelemetry
    propagate = None


def with_trace_context(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`metadata` plus `traceparent` (and `tracestate`, `baggage`) of the current context, if any."""
    if propagate is None:
        return metadata
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return (*metadata, *carrier.items()) if carrier else metadata
