"""OpenTelemetry, on: each RPC is a server span, the child of the till's span (the SDK sends the W3C
trace context), with its PostgreSQL and Redis calls as children, and the request log's line carries the
trace id. (Off, the default, is every other test.)"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ecard import DrugClass, Purpose, Verdict, line_item
from ecard.testing import World
from ecard_server import tracing
from ecard_server.config import Settings
from tests.helpers.inprocess import InProcessServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with configured(provider):
        yield provider, exporter


@contextlib.contextmanager
def configured(provider: TracerProvider) -> Iterator[None]:
    """Tracing on with `provider` for the block, off after it (also on failure)."""
    assert tracing.configure(provider)
    try:
        yield
    finally:
        tracing.shutdown()


def shared_server(pg_url: str, redis_url: str) -> InProcessServer:
    """An in-process server on PostgreSQL and Redis, its Redis keys under a namespace of its own."""
    return InProcessServer(db=pg_url, redis=redis_url,
                           settings=Settings(redis_namespace=f"ecard-test-{uuid.uuid4().hex[:12]}"))


def descendants(spans: list[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    found, frontier = [], {root.context.span_id}
    while frontier:
        children = [s for s in spans if s.parent is not None and s.parent.span_id in frontier]
        found += children
        frontier = {s.context.span_id for s in children}
    return found


def test_every_rpc_is_a_span_with_its_store_calls_as_children(
    traced: tuple[TracerProvider, InMemorySpanExporter], pg_url: str, redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, exporter = traced
    with shared_server(pg_url, redis_url) as server:
        world = World.seed(server.target, cards=1)
        exporter.clear()
        caplog.set_level(logging.INFO, logger="ecard.requests")
        till = provider.get_tracer("till")
        with world.pharmacy() as pos, till.start_as_current_span("checkout") as checkout:
            answer = pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT)
            assert answer.verdict == Verdict.ACCEPTED
            pos.settle([line_item("XA01", "amoxicillin", DrugClass.A, unit_price_fen=1280)],
                       idempotency_key=uuid.uuid4().hex, verification_id=answer.verification_id)
    spans = list(exporter.get_finished_spans())
    trace_id = checkout.get_span_context().trace_id
    servers = {s.name: s for s in spans if s.kind == SpanKind.SERVER}
    for method in ("/ecard.v1.Verifier/Verify", "/ecard.v1.Settlement/Settle"):
        span = servers[method]
        assert span.context.trace_id == trace_id, method  # the till's trace
        assert span.parent is not None and span.parent.span_id == checkout.get_span_context().span_id
    verify_children = descendants(spans, servers["/ecard.v1.Verifier/Verify"])
    assert any(s.attributes.get("db.system") == "redis" for s in verify_children), verify_children  # the nonce
    settle_children = descendants(spans, servers["/ecard.v1.Settlement/Settle"])
    assert any(s.attributes.get("db.system") == "postgresql" for s in settle_children), settle_children
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ecard.requests"]
    settle_line = next(line for line in logged if line.get("method") == "Settle")
    assert settle_line["trace_id"] == format(trace_id, "032x")


def test_each_verify_of_a_group_committed_consumption_has_its_own_redis_span(
    traced: tuple[TracerProvider, InMemorySpanExporter], pg_url: str, redis_url: str,
) -> None:
    """Concurrent Verify calls share script calls (storage.group_commit: one thread sends the others'
    nonces with its own), yet each call's trace shows its nonce consumption as its own Redis child, not
    only the trace of the call that happened to send it."""
    from concurrent.futures import ThreadPoolExecutor

    provider, exporter = traced
    calls = 24
    with shared_server(pg_url, redis_url) as server:
        world = World.seed(server.target, cards=calls)
        tokens = [world.mint(i) for i in range(calls)]
        exporter.clear()
        till = provider.get_tracer("till")
        with world.pharmacy() as pos, ThreadPoolExecutor(max_workers=calls) as pool:
            def checkout(token: str) -> Verdict:
                with till.start_as_current_span("checkout"):
                    return pos.verify(token, purpose=Purpose.MEDICAL_SETTLEMENT).verdict

            assert list(pool.map(checkout, tokens)) == [Verdict.ACCEPTED] * calls
    spans = list(exporter.get_finished_spans())
    verifies = [s for s in spans if s.kind == SpanKind.SERVER and s.name == "/ecard.v1.Verifier/Verify"]
    assert len(verifies) == calls
    for verify in verifies:
        consumptions = [s for s in descendants(spans, verify) if s.attributes.get("db.system") == "redis"
                        and s.attributes.get("db.statement") == "EVALSHA consume"]
        assert len(consumptions) == 1, [(s.name, dict(s.attributes or {})) for s in descendants(spans, verify)]


def test_a_refused_call_is_an_error_span_and_an_unsampled_call_leaves_no_span_at_all(
    pg_url: str, redis_url: str
) -> None:
    """The guard's span layer: the gRPC status on the span; a call the sampler drops is dropped whole (its
    Redis and PostgreSQL calls are not sampled on their own as roots)."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

    exporter = InMemorySpanExporter()
    sampled = {"on": True}

    class Switch(ParentBased):  # the test's own sampler: on or off by the flag, children follow their parent
        def __init__(self) -> None:
            super().__init__(ALWAYS_ON)

        def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, **kw):  # type: ignore[no-untyped-def]
            root = ALWAYS_ON if sampled["on"] else ALWAYS_OFF
            return ParentBased(root).should_sample(parent_context, trace_id, name, kind, attributes, links)

    provider = TracerProvider(sampler=Switch())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with configured(provider), shared_server(pg_url, redis_url) as server:
        world = World.seed(server.target, cards=1)
        with world.pharmacy() as pos:
            exporter.clear()
            with pytest.raises(Exception, match="VERIFICATION_NOT_FOUND"):
                pos.get_verification("no-such-request")
            (span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
            assert span.name == "/ecard.v1.Verifier/GetVerification"
            assert span.attributes["rpc.grpc.status_code"] == 5 and not span.status.is_ok
            assert span.attributes["rpc.service"] == "ecard.v1.Verifier"

            sampled["on"] = False
            exporter.clear()
            switched = time.time_ns()  # a span begun before (a background notice's PUBLISH) may end after
            assert pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT).verdict == Verdict.ACCEPTED
            assert [s.name for s in exporter.get_finished_spans() if (s.start_time or 0) >= switched] == []


def logged_trace_ids(caplog: pytest.LogCaptureFixture, method: str) -> list[str]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ecard.requests"]
    return [line["trace_id"] for line in lines if line.get("method") == method]


def test_the_sampler_decided_before_the_sdk_keeps_its_decisions_and_the_callers(
    pg_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """parentbased_traceidratio (what operations.md tells production to run), decided by the layer before
    the SDK is asked (tracing._dropping): a root call is recorded exactly when the trace id it drew is under
    the ratio's bound (the SDK's span takes the trace id the decision was made on), an unrecorded one still
    has a trace id in its log line; a caller's sampled traceparent makes the call a recorded child with
    its Redis calls under it, an unsampled one leaves no span and its trace id in the log line."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBasedTraceIdRatio, TraceIdRatioBased

    ratio = TraceIdRatioBased(0.5)  # the root of what OTEL_TRACES_SAMPLER_ARG=0.5 makes below

    class ByTurns(RandomIdGenerator):  # trace ids under the ratio's bound and over it, by turns
        drawn = 0

        def generate_trace_id(self) -> int:
            self.drawn += 1
            return self.drawn << 64 | (1 if self.drawn % 2 else ratio.bound + 1)

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBasedTraceIdRatio(0.5), id_generator=ByTurns())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with configured(provider), shared_server(pg_url, redis_url) as server:
        world = World.seed(server.target, cards=1)
        caplog.set_level(logging.INFO, logger="ecard.requests")
        with world.pharmacy() as pos:
            exporter.clear()
            caplog.clear()
            for _ in range(24):
                with pytest.raises(Exception, match="VERIFICATION_NOT_FOUND"):
                    pos.get_verification("no-such-request")
            recorded = {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans()
                        if s.kind == SpanKind.SERVER}
            logged = logged_trace_ids(caplog, "GetVerification")
            assert len(logged) == 24 and all(len(t) == 32 and int(t, 16) for t in logged)
            # every other call (a background root span's draw may shift the turns once or twice): a
            # sampled call whose span drew a second trace id would be dropped by its sampler, by turns
            assert recorded <= set(logged) and 8 <= len(recorded) <= 16, len(recorded)
            for trace_id in logged:
                under = int(trace_id, 16) & ratio.TRACE_ID_LIMIT < ratio.bound
                assert under == (trace_id in recorded), trace_id
            # a dropped call's store calls (its lookup, a Redis HGET) are dropped with it, not sampled as
            # roots of their own; a recorded call's is its child
            lookups = [s for s in exporter.get_finished_spans() if s.name == "HGET"]
            assert {format(s.context.trace_id, "032x") for s in lookups} == recorded
            assert all(s.parent is not None for s in lookups)

            for till_sampler, recorded_child in ((ALWAYS_ON, True), (ALWAYS_OFF, False)):
                till = TracerProvider(sampler=till_sampler).get_tracer("till")  # the till's own sampler
                exporter.clear()
                caplog.clear()
                with till.start_as_current_span("checkout") as checkout:
                    answer = pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT)
                    assert answer.verdict == Verdict.ACCEPTED
                    with pytest.raises(Exception, match="VERIFICATION_NOT_FOUND"):
                        pos.get_verification("no-such-request")
                caller = checkout.get_span_context()
                spans = list(exporter.get_finished_spans())
                servers = [s for s in spans if s.kind == SpanKind.SERVER]
                assert logged_trace_ids(caplog, "GetVerification") == [format(caller.trace_id, "032x")]
                if not recorded_child:
                    assert spans == [], [s.name for s in spans]
                    continue
                assert {s.name for s in servers} == {"/ecard.v1.Verifier/Verify",
                                                     "/ecard.v1.Verifier/GetVerification"}
                for span in servers:
                    assert span.context.trace_id == caller.trace_id
                    assert span.parent is not None and span.parent.span_id == caller.span_id
                verify = next(s for s in servers if s.name == "/ecard.v1.Verifier/Verify")
                assert any(s.attributes.get("db.system") == "redis" for s in descendants(spans, verify))


@pytest.mark.parametrize("name", ["parentbased_traceidratio", "traceidratio", "parentbased_always_off",
                                  "parentbased_always_on", "always_off", "always_on"])
def test_every_sampler_the_environment_names_is_decided_before_the_sdk(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The samplers OTEL_TRACES_SAMPLER makes take the layer's own decision (the SDK's sampler is not asked
    for a call it drops); one that decides otherwise (a subclass of its own) is left to the SDK."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.05")
    assert tracing._dropping(TracerProvider().sampler) is not None

    class Own(ParentBased):
        def should_sample(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return super().should_sample(*args, **kwargs)

    assert tracing._dropping(Own(ALWAYS_ON)) is None


def test_off_unless_the_environment_asks() -> None:
    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing.enabled() and tracing.server_spans("/ecard.v1.Verifier/Verify") is None


def test_the_span_layer_makes_its_span_current_through_opentelemetrys_own_context_variable() -> None:
    """The layer sets and resets OpenTelemetry's current context with its ContextVar's own methods (three
    Python calls fewer a call than the API's wrappers): what it attaches is what the API reads."""
    import contextvars

    from opentelemetry import context

    attach, detach, current = tracing._context_var()
    assert isinstance(getattr(attach, "__self__", None), contextvars.ContextVar)  # the fast path is taken
    token = attach(context.set_value("ecard-test", 1))
    assert context.get_value("ecard-test") == 1 and current() is context.get_current()
    detach(token)
    assert context.get_value("ecard-test") is None


@pytest.mark.parametrize("decided_by", ["layer", "sdk"])
def test_a_dropped_calls_store_calls_never_ask_the_sdk_for_a_span(
    decided_by: str, pg_url: str, redis_url: str
) -> None:
    """A call its sampler drops runs its PostgreSQL and Redis calls with the instrumentations switched off:
    none of them asks the SDK for a span (the SDK would make a non-recording one and drop it, at a cost
    on every statement); whether the layer decided (a standard sampler) or the SDK did (a sampler of
    its own)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    asked: list[str] = []  # the spans an instrumentation asked for inside a dropped call

    class Counting(TracerProvider):
        def get_tracer(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
            tracer = super().get_tracer(name, *args, **kwargs)
            if name != "ecard_server":
                start = tracer.start_span

                def counted(name, context=None, **kw):  # type: ignore[no-untyped-def]
                    current = trace.get_current_span(context).get_span_context()
                    if current.is_valid and not current.trace_flags.sampled:
                        asked.append(name)
                    return start(name, context, **kw)

                tracer.start_span = counted  # type: ignore[method-assign]
            return tracer

    class Own(ParentBased):  # decides as ParentBased(ALWAYS_OFF) does, but the layer cannot know it
        def should_sample(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return super().should_sample(*args, **kwargs)

    sampler = ParentBased(ALWAYS_OFF) if decided_by == "layer" else Own(ALWAYS_OFF)
    provider = Counting(sampler=sampler)
    with configured(provider), shared_server(pg_url, redis_url) as server:
        assert (tracing._dropping(sampler) is None) == (decided_by == "sdk")
        world = World.seed(server.target, cards=1)
        asked.clear()
        with world.pharmacy() as pos:
            for _ in range(3):
                assert pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT).verdict == Verdict.ACCEPTED
                with pytest.raises(Exception, match="VERIFICATION_NOT_FOUND"):
                    pos.get_verification("no-such-request")
        assert asked == []
