"""OpenTelemetry traces, off unless the standard environment asks for them.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) and `OTEL_SDK_DISABLED` is not
`true`; the rest is the standard variables' (OTEL_SERVICE_NAME, default "ecard"; OTEL_EXPORTER_OTLP_*;
OTEL_TRACES_SAMPLER and its argument; OTEL_RESOURCE_ATTRIBUTES). Then:

- every RPC is a server span, opened by the guard's first layer and closed by its last (`server_spans`:
  the method's name, `rpc.*` attributes, the gRPC status), the child of the caller's span when the call
  carries a W3C `traceparent` (the SDK sends one); an unsampled call pays for the sampler's answer and
  for making that answer current (its children are not sampled either), nothing more;
- every PostgreSQL statement, SQLite statement and Redis command it makes is a child span (psycopg,
  sqlite3 and redis instrumentations), also from the thread pool (the guard runs blocking work in a
  copy of the call's context);
- the request log's line of the call carries its `trace_id`.

Off, nothing of this is imported and no call pays for it: the guard adds no layer. `configure` runs
once per process, before the deployment opens its connections (instrumentation wraps the drivers'
connect), and after a fork.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from typing import Any

import grpc

_enabled = False
_provider: Any = None  # the TracerProvider configure was given or made (OpenTelemetry's global is set once)
_call: contextvars.ContextVar[tuple[Any, Any] | None] = contextvars.ContextVar("ecard_span", default=None)


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
    global _enabled, _provider
    if _enabled:
        return True
    if provider is None:
        if not wanted():
            return False
        try:
            import opentelemetry.instrumentation.redis
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
    _provider = provider
    for instrumentor in (PsycopgInstrumentor(), RedisInstrumentor(), SQLite3Instrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
    _enabled = True
    return True


def enabled() -> bool:
    return _enabled


def server_spans(method: str) -> tuple[Callable[[Any], None], Callable[[str], None]] | None:
    """The server span of each call of `method` ("/package.Service/Method"), for the guard: `begin(context)`
    at the call's start opens it (the parent: the trace context in the call's metadata) and makes it
    current, in the call's own context; `end(status_name)` at its end ("OK", "NOT_FOUND", ...) sets the
    status and closes it. None when tracing is off."""
    if not _enabled:
        return None
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = _provider.get_tracer("ecard_server")
    service, name = method.lstrip("/").rsplit("/", 1)
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
    fields = frozenset(propagate.get_global_textmap().fields)
    extract, attach, detach = propagate.extract, otel_context.attach, otel_context.detach
    in_context, start, set_call = trace.set_span_in_context, tracer.start_span, _call.set
    codes = {code.name: code.value[0] for code in grpc.StatusCode}

    def begin(context: Any) -> None:
        carrier = {key: value for key, value in context.invocation_metadata() or () if key in fields}
        parent = extract(carrier) if carrier else None
        span = start(method, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        set_call((span, attach(in_context(span, parent))))

    def end(status_name: str) -> None:
        call = _call.get()
        if call is None:
            return
        span, token = call
        set_call(None)
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", codes.get(status_name, 2))
            if status_name != "OK":
                span.set_status(Status(StatusCode.ERROR, status_name))
        span.end()
        detach(token)

    return begin, end


def trace_id() -> str:
    """The current span's trace id (32 hex digits), or "" when no span is current. An unsampled call has
    one too (its caller's, or the one its sampler was asked about): the till's log lines can be matched."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def shutdown() -> None:
    """Exports what is buffered and takes the instrumentation off the drivers (the process's end; a
    server made afterwards in the same process is not traced)."""
    global _enabled, _provider
    if not _enabled:
        return
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    provider, _provider = _provider, None
    if hasattr(provider, "force_flush"):
        provider.force_flush()
    for instrumentor in (PsycopgInstrumentor(), RedisInstrumentor(), SQLite3Instrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _enabled = False
