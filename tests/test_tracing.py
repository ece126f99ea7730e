"""Traces leave the processes over OTLP and follow the work across them: one trace from the
gateway through the CRM and its outbox relay to the timeline's consumer, and one from the
gateway through the calendar service to the accounts service's token call. The services run as
real processes, started together once for the module, exporting to a small OTLP receiver in the
test."""

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import uuid4

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipedesk_common.auth import Role
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import free_port, run_process, wait_until_serving
from pipedesk_testkit.waiting import eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

SERVER, CLIENT, PRODUCER, CONSUMER = (
    Span.SPAN_KIND_SERVER,
    Span.SPAN_KIND_CLIENT,
    Span.SPAN_KIND_PRODUCER,
    Span.SPAN_KIND_CONSUMER,
)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class OtlpReceiver:
    """An OTLP/HTTP trace receiver: decodes each export (protobuf) into ``ReceivedSpan``s."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.take(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={
                                a.key: a.value.string_value or a.value.int_value
                                for a in span.attributes
                            },
                        )
                    )
        with self.lock:
            self.spans.extend(received)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=10)


def exporting(service_env: dict[str, str], receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    """A service process's environment: the run's settings, spans exported to ``receiver``."""
    return {
        **service_env,
        "LOG_LEVEL": "WARNING",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **extra,
    }


SERVICES = {
    "gateway": "pipedesk_gateway",
    "crm": "crm_service",
    "timeline": "timeline_service",
    "calendar": "calendar_service",
    "accounts": "accounts_service",
}


@dataclass(frozen=True)
class TracedSystem:
    receiver: OtlpReceiver
    urls: dict[str, str]

    async def flushed(self, *names: str) -> None:
        """Wait until the receiver holds every span the processes ``names`` have ended: each
        exports its spans in the order they end, so once the span of a request made now has
        arrived, all those ended before it have too."""
        async with httpx.AsyncClient(timeout=10) as http:
            markers = {}
            for name in names:
                trace_id, _, _, headers = traced_headers({})
                await http.get(f"{self.urls[name]}/healthz", headers=headers)
                markers[trace_id] = f"pipedesk-{name}"

        async def arrived() -> bool:
            return all(
                any(span.service == service for span in self.receiver.trace(trace_id))
                for trace_id, service in markers.items()
            )

        await eventually(arrived)


@pytest.fixture(scope="module")
def system(
    service_env: dict[str, str], google_stack: GoogleStack, module_broker_prefix: str
) -> Iterator[TracedSystem]:
    """The gateway, CRM, timeline, calendar and accounts services, each a process of its own
    exporting to one receiver, started together once for the module's tests (each follows the
    trace it opens). Calendar reaches Google's emulator, and the accounts service of this set
    for its tokens, not the run's."""
    ports = {name: free_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    with otlp_receiver() as receiver:
        env = exporting(
            service_env,
            receiver,
            BROKER_PREFIX=module_broker_prefix,
            GOOGLE_ROOT_URL=google_stack.root_url,
            CALENDAR_JOBS_ENABLED="false",
            GATEWAY_READY_SERVICES=json.dumps([name for name in SERVICES if name != "gateway"]),
            **{f"{name.upper()}_URL": url for name, url in urls.items() if name != "gateway"},
            **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()},
        )
        command = ["-m", "pipedesk_testkit.service_group", *SERVICES.values()]
        with run_process(command, env=env) as services:
            for url in urls.values():
                wait_until_serving(f"{url}/readyz", timeout=240, process=services)
            yield TracedSystem(receiver, urls)


def chain(spans: list[ReceivedSpan], last: ReceivedSpan) -> list[ReceivedSpan]:
    """``last`` and its ancestors among ``spans``, the root first."""
    by_id = {span.span_id: span for span in spans}
    found = [last]
    while found[-1].parent_id in by_id:
        found.append(by_id[found[-1].parent_id])
    return list(reversed(found))


def servers_of(spans: list[ReceivedSpan], service: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.kind == SERVER and span.service == service]


def traced_headers(token_headers: dict[str, str]) -> tuple[str, str, str, dict[str, str]]:
    """Headers opening a new trace at the client: (trace id, client span id, request id, all)."""
    trace_id, span_id, request_id = uuid4().hex, uuid4().hex[:16], f"req-{uuid4().hex}"
    headers = {
        **token_headers,
        "traceparent": f"00-{trace_id}-{span_id}-01",
        "x-request-id": request_id,
    }
    return trace_id, span_id, request_id, headers


async def test_one_trace_follows_a_lead_from_the_gateway_to_the_timeline_consumer(
    system: TracedSystem, users: Users
) -> None:
    receiver = system.receiver
    rep = users.make(Role.REP, teams=["t1"])
    trace_id, client_span, request_id, headers = traced_headers(rep.headers)
    async with httpx.AsyncClient(base_url=system.urls["gateway"], timeout=30) as gateway:
        created = await gateway.post("/api/leads", json={"title": "Traced"}, headers=headers)
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == request_id

    async def consumed() -> list[ReceivedSpan]:
        return [
            span
            for span in receiver.trace(trace_id)
            if span.kind == CONSUMER and span.service == "pipedesk-timeline"
        ]

    consumer = (await eventually(consumed))[0]
    await system.flushed("gateway", "crm", "timeline")
    spans = receiver.trace(trace_id)
    path = chain(spans, consumer)
    # The client's span opens it; the gateway's server span, the CRM's, the relay's publish and
    # the timeline's consumer follow, each the child of the one before it.
    assert path[0].parent_id == client_span
    assert [(span.service, span.kind) for span in path] == [
        ("pipedesk-gateway", SERVER),
        ("pipedesk-crm", SERVER),
        ("pipedesk-crm", PRODUCER),
        ("pipedesk-timeline", CONSUMER),
    ]
    assert path[1].name == "POST /api/leads"
    assert path[2].name.startswith("publish crm.")
    assert consumer.attributes["pipedesk.request_id"] == request_id
    # One server span per request and process.
    assert len(servers_of(spans, "pipedesk-gateway")) == 1
    assert len(servers_of(spans, "pipedesk-crm")) == 1


async def test_one_trace_follows_a_meeting_through_the_calendar_service_to_its_token_call(
    system: TracedSystem, users: Users, google: GoogleStack
) -> None:
    receiver = system.receiver
    rep = users.make(Role.REP, teams=["t1"])
    await google.connect(rep, ["calendar"])
    trace_id, client_span, request_id, headers = traced_headers(rep.headers)
    async with httpx.AsyncClient(base_url=system.urls["gateway"], timeout=30) as gateway:
        meeting = {
            "summary": "Traced",
            "start": "2030-03-04T10:00:00Z",
            "end": "2030-03-04T11:00:00Z",
        }
        created = await gateway.post("/api/calendar/events", json=meeting, headers=headers)
        assert created.status_code == 201, created.text

    async def token_served() -> list[ReceivedSpan]:
        return servers_of(receiver.trace(trace_id), "pipedesk-accounts")

    accounts = (await eventually(token_served))[0]

    async def calendar_served() -> list[ReceivedSpan]:
        return servers_of(receiver.trace(trace_id), "pipedesk-calendar")

    await eventually(calendar_served)
    await system.flushed("gateway", "calendar", "accounts")
    spans = receiver.trace(trace_id)
    path = chain(spans, accounts)
    assert path[0].parent_id == client_span
    assert [(span.service, span.kind) for span in path if span.kind != CLIENT] == [
        ("pipedesk-gateway", SERVER),
        ("pipedesk-calendar", SERVER),
        ("pipedesk-accounts", SERVER),
    ]
    assert path[-2].kind == CLIENT
    assert path[-2].service == "pipedesk-calendar"
    assert path[-2].attributes["pipedesk.request_id"] == request_id
    assert len(servers_of(spans, "pipedesk-gateway")) == 1
    assert len(servers_of(spans, "pipedesk-calendar")) == 1
    assert len(servers_of(spans, "pipedesk-accounts")) == 1
