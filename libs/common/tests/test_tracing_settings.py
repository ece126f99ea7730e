"""Which span exporters the environment asks for, the headers a call to another service
carries, and a request's span when nothing receives the spans."""

from uuid import uuid4

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipedesk_common import observability
from pipedesk_common.observability import (
    configure_tracing,
    request_id_var,
    server_span,
    span_exporters,
    trace_headers,
)


def test_otlp_is_attached_when_asked_for_or_when_an_endpoint_is_set() -> None:
    [asked] = span_exporters({"OTEL_TRACES_EXPORTER": "otlp"})
    assert isinstance(asked, OTLPSpanExporter)
    [implied] = span_exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert isinstance(implied, OTLPSpanExporter)
    both = span_exporters({"OTEL_TRACES_EXPORTER": "otlp, console"})
    assert [type(exporter) for exporter in both] == [OTLPSpanExporter, ConsoleSpanExporter]


def test_nothing_is_exported_unless_configured() -> None:
    assert span_exporters({}) == []
    assert span_exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert (
        span_exporters({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) == []
    )


def test_an_unknown_exporter_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="jaeger"):
        span_exporters({"OTEL_TRACES_EXPORTER": "jaeger"})


def test_a_call_carries_the_request_id_of_the_work_it_is_done_for() -> None:
    assert "x-request-id" not in trace_headers()
    token = request_id_var.set("req-42")
    try:
        assert trace_headers()["x-request-id"] == "req-42"
    finally:
        request_id_var.reset(token)


def test_a_request_span_nothing_receives_is_unrecorded_and_carries_the_trace_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an exporter (and no processor added), a request's span costs no recording, but
    its trace and sampling are the SDK's: a caller's trace goes on, a request without one starts
    its own. Once a processor receives the spans, they are recorded."""
    unread = observability._Provider()
    monkeypatch.setattr(observability, "_tracer_provider", unread)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: unread)
    trace_id, caller_span_id = uuid4().hex, uuid4().hex[:16]
    caller = propagate.extract({"traceparent": f"00-{trace_id}-{caller_span_id}-01"})
    span = server_span("HTTP GET", caller)
    context = span.get_span_context()
    assert not span.is_recording()
    assert (format(context.trace_id, "032x"), context.trace_flags.sampled) == (trace_id, True)
    assert context.is_valid
    assert format(context.span_id, "016x") != caller_span_id
    carried: dict[str, str] = {}
    propagate.inject(carried, context=trace.set_span_in_context(span))
    assert carried["traceparent"] == f"00-{trace_id}-{format(context.span_id, '016x')}-01"
    first, second = (server_span("HTTP GET", None).get_span_context() for _ in range(2))
    assert first.is_valid
    assert first.trace_flags.sampled
    assert first.trace_id != second.trace_id
    # A new trace's flags and state are those the SDK gives the root span it starts itself.
    started = unread.get_tracer("tests").start_span("HTTP GET").get_span_context()
    assert (first.trace_flags, dict(first.trace_state)) == (
        started.trace_flags,
        dict(started.trace_state),
    )
    monkeypatch.undo()

    exporter = InMemorySpanExporter()
    configure_tracing("tests").add_span_processor(SimpleSpanProcessor(exporter))
    recorded = server_span("HTTP GET", caller)
    assert recorded.is_recording()
    recorded.end()
    [finished] = exporter.get_finished_spans()
    assert finished.context is not None
    assert format(finished.context.trace_id, "032x") == trace_id


def test_the_trace_context_injected_is_what_the_propagator_injects() -> None:
    """``inject_trace_context`` writes what ``propagate.inject`` would: traceparent,
    tracestate and baggage, or nothing without a span."""
    span = trace.NonRecordingSpan(
        trace.SpanContext(
            int(uuid4().hex, 16),
            int(uuid4().hex[:16], 16),
            is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            trace_state=trace.TraceState([("vendor", "v1"), ("other", "o2")]),
        )
    )
    plain = trace.set_span_in_context(span)
    with_baggage = baggage.set_baggage("tenant", "a b", context=plain)
    unsampled = trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(int(uuid4().hex, 16), int(uuid4().hex[:16], 16), is_remote=True)
        )
    )
    for context in (plain, with_baggage, unsampled, otel_context.Context()):
        token = otel_context.attach(context)
        try:
            ours: dict[str, str] = {}
            observability.inject_trace_context(ours)
            theirs: dict[str, str] = {}
            propagate.get_global_textmap().inject(theirs)
        finally:
            otel_context.detach(token)
        assert ours == theirs
        assert ("traceparent" in ours) == bool(context)
        if context is with_baggage:
            assert ours["tracestate"] == "vendor=v1,other=o2"
            assert "baggage" in ours
