"""OpenTelemetry, on: each RPC is a server span, the child of the till's span (the SDK sends the W3C
trace context), with its PostgreSQL and Redis calls as children, and the request log's line carries the
trace id. (Off, the default, is every other test.)"""

from __future__ import annotations

import json
import logging
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
    assert tracing.configure(provider)
    try:
        yield provider, exporter
    finally:
        tracing.shutdown()


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
    settings = Settings(redis_namespace=f"ecard-test-{uuid.uuid4().hex[:12]}")
    with InProcessServer(db=pg_url, redis=redis_url, settings=settings) as server:
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
    assert tracing.configure(provider)
    try:
        settings = Settings(redis_namespace=f"ecard-test-{uuid.uuid4().hex[:12]}")
        with InProcessServer(db=pg_url, redis=redis_url, settings=settings) as server:
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
                assert pos.verify(world.mint(0), purpose=Purpose.MEDICAL_SETTLEMENT).verdict == Verdict.ACCEPTED
                assert list(exporter.get_finished_spans()) == []
    finally:
        tracing.shutdown()


def test_off_unless_the_environment_asks() -> None:
    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing.enabled() and tracing.server_spans("/ecard.v1.Verifier/Verify") is None
