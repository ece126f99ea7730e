"""Which span exporters the environment asks for, and the headers a call to another service
carries."""

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from pipedesk_common.observability import request_id_var, span_exporters, trace_headers


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
