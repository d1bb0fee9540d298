"""OpenTelemetry traces, off unless the standard environment asks for them.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) and `OTEL_SDK_DISABLED` is not
`true`; the rest is the standard variables' (OTEL_SERVICE_NAME, default "ecard"; OTEL_EXPORTER_OTLP_*;
OTEL_TRACES_SAMPLER and its argument; OTEL_RESOURCE_ATTRIBUTES). Then:

- every RPC is a server span, opened by the guard's first layer and closed by its last (`server_spans`:
  the method's name, `rpc.*` attributes, the gRPC status), the child of the caller's span when the call
  carries a W3C `traceparent` (the SDK sends one); with the standard samplers a call that is not sampled
  is decided before the SDK is asked and pays for a trace id (and, when its caller sent a trace context,
  a non-recording span) made current in a context that switches the instrumentations off: its children
  are not sampled either, so its store calls go straight to the drivers;
- every PostgreSQL statement, SQLite statement and Redis command it makes is a child span (psycopg,
  sqlite3 and redis instrumentations), also from the thread pool (the guard runs blocking work in a
  copy of the call's context); the nonce consumption's script call, sent on a connection the redis
  instrumentation does not see and group-committed with other calls', is the child span `EVALSHA` of
  each call it consumes for (`redis_span`: the span is the call's wait for it);
- the request log's line of the call carries its `trace_id`.

Off, nothing of this is imported and no call pays for it: the guard adds no layer. `configure` runs
once per process, before the deployment opens its connections (instrumentation wraps the drivers'
connect), and after a fork.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable
from typing import Any

import grpc

_enabled = False
_provider: Any = None  # the TracerProvider configure was given or made (OpenTelemetry's global is set once)
# the current call's (span, context token, whether the span records), set by the guard's span layer; a
# dropped call without a caller's trace context has its trace id (an int) where the span would be
_call: contextvars.ContextVar[tuple[Any, Any, bool] | None] = contextvars.ContextVar("ecard_span", default=None)


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
    status and closes it. None when tracing is off.

    A call the sampler drops is decided before the SDK is asked (`_dropping`): with the standard samplers
    (`parentbased_*`, `traceidratio`, `always_*`, OTEL_TRACES_SAMPLER's) the decision is a function of
    the trace id and the caller's sampled flag, so the layer draws the trace id itself. A call that is not
    sampled and whose caller sent a trace context gets the span the SDK would make (a NonRecordingSpan
    of the caller's trace id, with its trace state) without the SDK's sampler results and checks; one
    whose caller sent none (the common case: a till without tracing) is only its drawn trace id, kept
    for the request log (`trace_id`), no span object at all. Either is made current with one ContextVar
    set (`_context_var`) of a context that suppresses the instrumentations (a shared one when the call's
    context was empty); at its end nothing is set or ended, the context is reset. A sampled call's span
    is the SDK's, made with the trace id the decision was taken on. Any other sampler (a subclass, a
    custom one) is asked by the SDK for every call."""
    if not _enabled:
        return None
    from opentelemetry import propagate, trace
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    tracer = _provider.get_tracer("ecard_server")
    service, name = method.lstrip("/").rsplit("/", 1)
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
    fields = frozenset(propagate.get_global_textmap().fields)
    extract, in_context, start, set_call = propagate.extract, trace.set_span_in_context, tracer.start_span, _call.set
    attach, detach, current = _context_var()
    codes = {code.name: code.value[0] for code in grpc.StatusCode}
    # an unsampled call's children are dropped whatever they are: the instrumentations' own switch off
    # (psycopg's, sqlite3's, redis's `is_instrumentation_enabled`) spares each statement the SDK's span
    quiet = {_SUPPRESS_INSTRUMENTATION_KEY: True}
    rule = _dropping(_provider.sampler)
    kind = SpanKind.SERVER

    def caller_context(context: Any) -> Any:
        """The trace context in the call's metadata (extracted), or None when it carries none."""
        metadata = context.invocation_metadata() or ()
        for key, _ in metadata:
            if key in fields:
                return extract({key: value for key, value in metadata if key in fields})
        return None

    def recorded(parent: Any) -> None:
        """The SDK's span of the call (it decides, or records what the layer decided), made current; one
        its sampler dropped is made current with the instrumentations suppressed, as the layer's own."""
        span = start(method, context=parent, kind=kind, attributes=attributes)
        if span.is_recording():
            set_call((span, attach(in_context(span, parent)), True))
        else:
            set_call((span, attach(Context({**in_context(span, parent), **quiet})), False))

    if rule is None:
        def begin(context: Any) -> None:  # every decision the SDK's
            recorded(caller_context(context))
    else:
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

        bound, follows_parent = rule
        limit = TraceIdRatioBased.TRACE_ID_LIMIT
        ids = _provider.id_generator
        new_trace_id, new_span_id = ids.generate_trace_id, ids.generate_span_id
        draw = _draws(ids)
        drawn_set = _drawn.set
        tracer.id_generator = _Drawn(ids)  # this tracer's root spans take the trace id drawn below
        current_span = trace.get_current_span
        span_key = next(iter(in_context(NonRecordingSpan(SpanContext(1, 1, False)), Context())))
        quiet_context = Context(quiet)

        def begin(context: Any) -> None:
            parent = caller_context(context)
            if parent is not None:  # the caller's trace context
                caller = current_span(parent).get_span_context()
                if caller.is_valid:  # parentbased_*: its sampled flag decides; traceidratio: its trace id
                    if caller.trace_flags.sampled if follows_parent else caller.trace_id & limit < bound:
                        recorded(parent)
                    else:
                        span = NonRecordingSpan(SpanContext(
                            caller.trace_id, draw(64) or new_span_id(), False,
                            TraceFlags(caller.trace_flags & TraceFlags.RANDOM_TRACE_ID), caller.trace_state))
                        set_call((span, attach(Context({**parent, span_key: span, **quiet})), False))
                    return
            trace_id = draw(128) or new_trace_id()
            if trace_id & limit >= bound:  # dropped: its trace id, and its children's instrumentation off
                base = current() if parent is None else parent
                set_call((trace_id, attach(Context({**base, **quiet}) if base else quiet_context), False))
            else:
                drawn_set(trace_id)
                recorded(parent)

    def end(status_name: str) -> None:
        call = _call.get()
        if call is None:
            return
        span, token, recording = call
        set_call(None)
        if recording:  # (a span that does not record has nothing to set or end)
            span.set_attribute("rpc.grpc.status_code", codes.get(status_name, 2))
            if status_name != "OK":
                span.set_status(Status(StatusCode.ERROR, status_name))
            span.end()
        detach(token)

    return begin, end


def _draws(ids: Any) -> Callable[[int], int]:
    """`draw(bits)`: a random id of that many bits as the SDK's default id generator (RandomIdGenerator)
    draws it, with `random.getrandbits` itself (a Python call fewer an id); 0, which the caller replaces
    by the generator's own draw, for an id generator of another kind (or the invalid id 0 drawn)."""
    import random

    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    if type(ids) is RandomIdGenerator and type(ids).generate_trace_id is RandomIdGenerator.generate_trace_id:
        return random.getrandbits
    return lambda bits: 0


def _context_var() -> tuple[Callable[[Any], Any], Callable[[Any], None], Callable[[], Any]]:
    """(attach, detach, get_current) of OpenTelemetry's current context. With its default runtime context
    (a ContextVar) those are the ContextVar's own set, reset and get, not the API's wrappers around them:
    three Python calls fewer a call. Another runtime context (OTEL_PYTHON_CONTEXT) gets the API's."""
    from opentelemetry import context as otel_context
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(var, contextvars.ContextVar):
        return var.set, var.reset, var.get
    return otel_context.attach, otel_context.detach, otel_context.get_current


_drawn: contextvars.ContextVar[int] = contextvars.ContextVar("ecard_drawn_trace_id", default=0)


class _Drawn:
    """The id generator of the layer's tracer: a root span's trace id is the one the layer drew and
    decided on (`_drawn`, set in the call's context just before), span ids the provider's."""

    def __init__(self, ids: Any) -> None:
        self._ids = ids
        self.generate_span_id = ids.generate_span_id
        self.is_trace_id_random = ids.is_trace_id_random

    def generate_trace_id(self) -> int:
        trace_id = _drawn.get()
        if trace_id:
            _drawn.set(0)
            return trace_id
        return int(self._ids.generate_trace_id())


def _dropping(sampler: Any) -> tuple[int, bool] | None:
    """For a sampler whose decision is known from the trace id and the caller's flag, the standard ones
    OTEL_TRACES_SAMPLER names (classes of the SDK's whose `should_sample` is the SDK's own): (the bound: a
    call with no caller's trace context is sampled exactly when its trace id's low 64 bits are under it,
    as TraceIdRatioBased decides; 0 for always_off, TRACE_ID_LIMIT + 1 for always_on; whether a caller's sampled flag
    decides instead). None for any other sampler (the SDK asks it for every call)."""
    from opentelemetry.sdk.trace.sampling import Decision, ParentBased, StaticSampler, TraceIdRatioBased

    def own(candidate: Any, cls: Any) -> bool:  # an instance of cls deciding as cls does
        return isinstance(candidate, cls) and bool(type(candidate).should_sample is cls.should_sample)

    def static(candidate: Any) -> Decision | None:
        return candidate._decision if own(candidate, StaticSampler) else None  # type: ignore[no-any-return]

    def root_bound(root: Any) -> int | None:
        if static(root) is Decision.DROP:
            return 0
        if static(root) is Decision.RECORD_AND_SAMPLE:
            return TraceIdRatioBased.TRACE_ID_LIMIT + 1
        if own(root, TraceIdRatioBased):
            return int(root.bound)
        return None

    if own(sampler, ParentBased):
        remote = (static(sampler._remote_parent_sampled), static(sampler._remote_parent_not_sampled))
        if remote != (Decision.RECORD_AND_SAMPLE, Decision.DROP):
            return None
        bound = root_bound(sampler._root)
        return None if bound is None else (bound, True)
    bound = root_bound(sampler)
    return None if bound is None else (bound, False)


_NOTHING = contextlib.nullcontext()  # a store call that makes no span (tracing off, or the call not sampled)


def redis_span(command: str, peer: tuple[str, int] | None = None) -> Any:
    """A Redis call the redis instrumentation does not see (a script sent on a connection of the store's
    own, storage.redis_connect.ScriptLine) as the current call's child span, named and attributed as that
    instrumentation names its spans (`db.system` redis, `db.statement` the command): a context manager
    around the call, or around the wait for it when another thread sends it (a group commit). Nothing
    when tracing is off or the current span is not recording (an unsampled call's children are not
    sampled either)."""
    if not _enabled:
        return _NOTHING
    call = _call.get()
    if call is not None:
        if not call[2]:
            return _NOTHING
    else:
        from opentelemetry import trace

        if not trace.get_current_span().is_recording():
            return _NOTHING
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {"db.system": "redis", "db.statement": command}
    if peer is not None:
        attributes["net.peer.name"], attributes["net.peer.port"] = peer
    return _provider.get_tracer("ecard_server").start_as_current_span(
        command.split(" ", 1)[0], kind=SpanKind.CLIENT, attributes=attributes)


def trace_id() -> str:
    """The current span's trace id (32 hex digits), or "" when no span is current. An unsampled call has
    one too (its caller's, or the one its sampler was asked about): the till's log lines can be matched."""
    call = _call.get()
    if call is not None:  # the call's span, as the guard's layer opened it, or a dropped call's trace id
        if type(call[0]) is int:
            return format(call[0], "032x")
        context = call[0].get_span_context()
    else:
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
