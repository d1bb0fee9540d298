"""OpenTelemetry traces, off unless the standard environment asks for them.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) and `OTEL_SDK_DISABLED` is not
`true`; the rest is the standard variables' (OTEL_SERVICE_NAME, default "ecard"; OTEL_EXPORTER_OTLP_*;
OTEL_TRACES_SAMPLER and its argument; OTEL_RESOURCE_ATTRIBUTES). Then:

- every RPC is a server span (OpenTelemetry's gRPC instrumentation, as a server interceptor), the child
  of the caller's span when the call carries a W3C `traceparent` (the SDK sends one);
- every PostgreSQL statement, SQLite statement and Redis command it makes is a child span (psycopg,
  sqlite3 and redis instrumentations), also from the thread pool (the guard runs blocking work in a
  copy of the call's context);
- the request log's line of the call carries its `trace_id`.

Off, nothing of this is imported and no call pays for it. `configure` runs once per process, before the
deployment opens its connections (instrumentation wraps the drivers' connect), and after a fork.
"""

from __future__ import annotations

import os
from typing import Any

_enabled = False


def wanted(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return bool(exporter) and exporter != "none" and env.get("OTEL_SDK_DISABLED", "").lower() != "true"


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
    raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: ecard knows otlp, console and none")


def configure(provider: Any = None) -> bool:
    """Turns tracing on when the environment asks (or with `provider`, a TracerProvider of the caller's:
    tests give one with an in-memory exporter). Returns whether it is on. ValueError for an exporter
    ecard does not know."""
    global _enabled
    if _enabled:
        return True
    if provider is None:
        if not wanted():
            return False
        try:
            import opentelemetry.instrumentation.grpc
            import opentelemetry.sdk.trace  # noqa: F401
        except ImportError:
            raise ValueError("OTEL_TRACES_EXPORTER asks for traces but OpenTelemetry is not installed: "
                             "pip install 'ecard[tracing]'") from None
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporters = [name.strip().lower() for name in os.environ["OTEL_TRACES_EXPORTER"].split(",")]
        resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "ecard")})
        provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
        for name in exporters:
            if name != "none":
                provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    from opentelemetry import trace
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    trace.set_tracer_provider(provider)
    for instrumentor in (PsycopgInstrumentor(), RedisInstrumentor(), SQLite3Instrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
    _enabled = True
    return True


def enabled() -> bool:
    return _enabled


def server_interceptors() -> list[Any]:
    """The gRPC server interceptors of tracing: none when it is off."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]


def trace_id() -> str:
    """The current span's trace id (32 hex digits), or "" outside a recorded span."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def shutdown() -> None:
    """Exports what is buffered and takes the instrumentation off the drivers (the process's end; a
    server made afterwards in the same process is not traced)."""
    global _enabled
    if not _enabled:
        return
    from opentelemetry import trace
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()
    for instrumentor in (PsycopgInstrumentor(), RedisInstrumentor(), SQLite3Instrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _enabled = False
