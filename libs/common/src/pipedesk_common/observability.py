"""Request ids, JSON logs, traces, Prometheus metrics and the health endpoints every service
serves."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipedesk_common.db import database_unreachable
from pipedesk_common.errors import PayloadTooLarge, ServiceUnavailable, problem_response

REQUEST_ID_HEADER: Final = "x-request-id"
REQUEST_ID_ATTRIBUTE: Final = "pipedesk.request_id"  # on the spans of work done for a request
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DATABASE_RETRY_AFTER_SECONDS: Final = 5  # the Retry-After of a 503 while the database is away

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

HTTP_REQUEST_SECONDS = Histogram(
    "pipedesk_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_REQUESTS = Counter(
    "pipedesk_http_requests_total",
    "HTTP requests by route template",
    ["service", "method", "route", "status"],
)

ReadinessCheck = Callable[[], Awaitable[None]]


class _Provider(TracerProvider):
    """The SDK's provider, knowing whether any processor receives its spans."""

    receiving = False

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.receiving = True


_tracer_provider: _Provider | None = None


def span_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters the environment asks for. ``OTEL_TRACES_EXPORTER``: a comma-separated list
    of ``otlp`` (OTLP over HTTP, protobuf, to ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, as the exporter reads them), ``console`` and
    ``none``; unset, ``otlp`` when an OTLP endpoint is set and nothing otherwise."""
    names = [
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    ]
    if not names and (
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        names = ["otlp"]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            # Imported only when asked for: a process that exports nothing never loads it.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name != "none":
            raise ValueError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)"
            )
    return exporters


def configure_tracing(service: str) -> TracerProvider:
    """The process's tracer provider, made once, exporting its spans as ``span_exporters``
    says. Spans are made and propagated (HTTP → service → outbox → relay → RabbitMQ →
    consumer) whether or not they are exported, for whatever processor an operator adds."""
    global _tracer_provider  # noqa: PLW0603 - one provider per process, as OpenTelemetry requires
    if _tracer_provider is None:
        name = os.environ.get("OTEL_SERVICE_NAME", f"pipedesk-{service}")
        _tracer_provider = _Provider(resource=Resource.create({"service.name": name}))
        for exporter in span_exporters(os.environ):
            _tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(_tracer_provider)
    return _tracer_provider


# The propagator OpenTelemetry sets up when ``OTEL_PROPAGATORS`` names none: W3C trace context,
# then W3C baggage. While it is the global one, ``inject_trace_context`` does its work itself.
_DEFAULT_TEXTMAP: Final = (
    propagate.get_global_textmap() if not os.environ.get("OTEL_PROPAGATORS") else None
)
_BAGGAGE: Final = W3CBaggagePropagator()


def inject_trace_context(carrier: dict[str, str]) -> None:
    """``propagate.inject(carrier)``: the current trace context (``traceparent``,
    ``tracestate``) and baggage into ``carrier``. With the default propagator, the
    ``traceparent`` is written here from the current span, in the format of OpenTelemetry's
    W3C propagator, without going through the composite's generic steps."""
    textmap = propagate.get_global_textmap()
    if textmap is not _DEFAULT_TEXTMAP:
        textmap.inject(carrier)
        return
    context = otel_context.get_current()
    span_context = trace.get_current_span(context).get_span_context()
    if span_context != trace.INVALID_SPAN_CONTEXT:
        carrier["traceparent"] = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
            f"-{span_context.trace_flags:02x}"
        )
        if span_context.trace_state:
            carrier["tracestate"] = span_context.trace_state.to_header()
    _BAGGAGE.inject(carrier, context)


def trace_headers() -> dict[str, str]:
    """The current trace context (``traceparent``, ``tracestate``) and request id, as the
    headers of a call to another service."""
    carrier: dict[str, str] = {}
    inject_trace_context(carrier)
    request_id = request_id_var.get()
    if request_id:
        carrier[REQUEST_ID_HEADER] = request_id
    return carrier


tracer = trace.get_tracer("pipedesk.http")


def server_span(name: str, parent: Context | None) -> trace.Span:
    """A request's server span, not yet current. While no processor receives the process's
    spans (no exporter, none added), it is the span the SDK would make — its trace, its own id,
    the sampler's verdict — unrecorded: the trace goes on through it to the services called,
    at none of the cost of recording what nothing reads."""
    provider = _tracer_provider
    if provider is None or provider.receiving or trace.get_tracer_provider() is not provider:
        return tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER)
    parent_context = trace.get_current_span(parent).get_span_context()
    ids = provider.id_generator
    if parent_context.is_valid:
        trace_id, random_trace_id = (
            parent_context.trace_id,
            parent_context.trace_flags.random_trace_id,
        )
    else:
        trace_id, random_trace_id = ids.generate_trace_id(), ids.is_trace_id_random()
    if provider.sampler is DEFAULT_ON and not parent_context.is_valid:
        # What the default sampler answers for a new trace, whatever its id: sampled, with no
        # trace state to carry on (a root's verdict, asked of its ALWAYS_ON root sampler).
        decision, trace_state = Decision.RECORD_AND_SAMPLE, None
    else:
        sampled = provider.sampler.should_sample(parent, trace_id, name, trace.SpanKind.SERVER)
        decision, trace_state = sampled.decision, sampled.trace_state
    flags = (
        trace.TraceFlags.SAMPLED
        if decision is Decision.RECORD_AND_SAMPLE
        else trace.TraceFlags.DEFAULT
    )
    if random_trace_id:
        flags |= trace.TraceFlags.RANDOM_TRACE_ID
    span_context = trace.SpanContext(
        trace_id,
        ids.generate_span_id(),
        is_remote=False,
        trace_flags=trace.TraceFlags(flags),
        trace_state=trace_state,
    )
    return trace.NonRecordingSpan(span_context)


class TracedTransport(httpx.AsyncBaseTransport):
    """The transport of a service's calls to other services: each is a client span, and carries
    the trace context and the request id of the work it is done for."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        with tracer.start_as_current_span(
            f"{request.method} {url.host}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "http.request.method": request.method,
                "server.address": url.host,
                "server.port": url.port or (443 if url.scheme == "https" else 80),
                "url.path": url.path,
            },
        ) as span:
            carried = trace_headers()
            if REQUEST_ID_HEADER in carried:
                span.set_attribute(REQUEST_ID_ATTRIBUTE, carried[REQUEST_ID_HEADER])
            request.headers.update(carried)
            response = await self._inner.handle_async_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


# ``json.dumps(entry, default=str)``, without a new encoder for every line.
_JSON: Final = json.JSONEncoder(default=str)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, carrying the request id of the request being served."""

    _STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message"}

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: value
            for key, value in vars(record).items()
            if key not in self._STANDARD and key != "color_message" and not key.startswith("_")
        }
        return self.line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            fields,
            self.formatException(record.exc_info) if record.exc_info else None,
        )

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        fields: Mapping[str, Any],
        exception: str | None = None,
    ) -> str:
        """The JSON line of a record with these attributes and extra ``fields``."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(created, UTC).isoformat(),
            "level": level.lower(),
            "service": self._service,
            "logger": logger,
            "message": message,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
        entry.update(fields)
        if exception is not None:
            entry["exception"] = exception
        return _JSON.encode(entry)

    def formatException(self, ei: Any) -> str:
        """The traceback, with the message of every database error withheld: PostgreSQL and
        the driver quote parameter values (user data) in theirs."""
        error = ei[1]
        if not isinstance(error, BaseException):
            return super().formatException(ei)
        return withheld_traceback(error)


def _is_database_error(error: BaseException) -> bool:
    module = type(error).__module__
    return module.startswith(("sqlalchemy", "asyncpg", "psycopg"))


def withheld_traceback(error: BaseException) -> str:
    """``error``'s traceback as Python prints it, each database error's message withheld
    (a SQLAlchemy error keeps its statement, whose parameters are placeholders)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    lines: list[str] = []
    for index, exc in enumerate(reversed(chain)):
        if index:
            lines.append("\nThe above exception led to the following exception:\n\n")
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(exc.__traceback__))
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        if _is_database_error(exc):
            statement = getattr(exc, "statement", None)
            shown = f" [SQL: {statement}]" if statement else ""
            lines.append(f"{name}: (message withheld: it may quote values){shown}\n")
        else:
            lines.extend(traceback.format_exception_only(exc))
    return "".join(lines).rstrip("\n")


# The JSON handler ``configure_logging`` put on the root logger (the access lines' fast way out).
_json_handler: logging.StreamHandler[Any] | None = None


def _sole_json_handler(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    """The JSON handler ``configure_logging`` installed, when an INFO record of ``logger`` would
    reach it and nothing else: the level lets it through, no filter stands in its way, and no
    other handler would receive it. Otherwise None: the record must go through logging."""
    handler = _json_handler
    if (
        handler is None
        or type(handler.formatter) is not JsonLogFormatter
        or handler.filters
        or handler.level > logging.INFO
        or logger.disabled
        or logger.filters
        or not logger.isEnabledFor(logging.INFO)
    ):
        return None
    reached = 0
    current: logging.Logger | None = logger
    while current is not None:
        for found in current.handlers:
            if found is not handler:
                return None
            reached += 1
        if not current.propagate:
            break
        current = current.parent
    return handler if reached == 1 else None


def configure_logging(service: str, level: str = "INFO") -> None:
    # A log line says what it says through its message and extra fields: the caller's file and
    # line, the thread and the process (which the JSON lines leave out) are not looked up for
    # each record (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    global _json_handler  # noqa: PLW0603 - the one handler of the process's JSON lines
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(service))
    _json_handler = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # One access line per request comes from our middleware, with the route template.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO, and some URLs carry secrets (the OAuth
    # callback's code and state, which the gateway forwards): only its warnings are kept.
    logging.getLogger("httpx").setLevel(logging.WARNING)


ROUTE_LABEL: Final = "pipedesk.route_label"
"""Scope key an app sets when its router's template says nothing (the gateway's catch-all)."""


def _route_template(scope: Scope) -> str:
    """The matched route's path template (the router records it in the scope)."""
    if label := scope.get(ROUTE_LABEL):
        return str(label)
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


_REQUEST_ID_KEY: Final = REQUEST_ID_HEADER.encode()
# The headers the propagator reads (W3C trace context and baggage): only a request carrying one
# of them has a parent to extract.
_TRACE_HEADERS: Final = frozenset({b"traceparent", b"tracestate", b"baggage"})


class RequestContextMiddleware:
    """Request id in and out, latency by route template, and one access log line per request.

    Pure ASGI on the hot path: the headers are scanned once for the few it reads, and each
    route's metric series are looked up once, not labelled again per request."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        self.log = logging.getLogger("pipedesk.access")
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            labels = (self.service, method, route, str(status))
            series = (HTTP_REQUEST_SECONDS.labels(*labels), HTTP_REQUESTS.labels(*labels))
            self._series[key] = series
        series[0].observe(elapsed)
        series[1].inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        carrier: dict[str, str] | None = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_KEY:
                incoming = value.decode("latin-1")
            elif name in _TRACE_HEADERS:
                carrier = carrier or {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        status_sent = False
        id_header = (_REQUEST_ID_KEY, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status = message["status"]
                status_sent = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        method = scope["method"]
        parent = propagate.extract(carrier) if carrier is not None else None
        # The span is made current by hand (what ``start_as_current_span`` does, in fewer calls).
        span = server_span(f"HTTP {method}", parent)
        current = otel_context.attach(trace.set_span_in_context(span))
        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as error:
                # Answer here, inside this middleware, so even a 500 carries the request id.
                if status_sent:
                    self.log.exception("unhandled error", extra={"path": scope.get("path")})
                    raise
                await self._error_answer(error, scope)(scope, receive, send_with_id)
            finally:
                self._finish(scope, method, status, time.perf_counter() - started, span)
                request_id_var.reset(token)
                otel_context.detach(current)
        except Exception as error:
            if span.is_recording():
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            raise
        finally:
            span.end()

    def _finish(
        self, scope: Scope, method: str, status: int, elapsed: float, span: trace.Span
    ) -> None:
        """The request's route on its span, in its metrics and in its access line."""
        route = _route_template(scope)
        span.update_name(f"{method} {route}")
        span.set_attributes({"http.route": route, "http.response.status_code": status})
        self._observe(method, route, status, elapsed)
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        }
        handler = _sole_json_handler(self.log)
        if handler is not None:
            # The line logging would write, written without a record, its handling and its
            # formatting's generic parts: where the one JSON handler is all it would reach.
            formatter = cast(JsonLogFormatter, handler.formatter)
            line = formatter.line(time.time(), "INFO", self.log.name, "request", fields)
            with handler.lock or contextlib.nullcontext():
                try:
                    handler.stream.write(line + handler.terminator)
                    handler.flush()
                    return
                except Exception:  # noqa: S110 - logging below reports it its own way
                    pass
        self.log.info("request", extra=fields)

    def _error_answer(self, error: Exception, scope: Scope) -> Response:
        """A database that cannot be reached is a 503 the caller retries after a few seconds
        (logged without a stack: readiness and the reconnect logs say the rest); anything else
        is a 500, logged with its stack."""
        path = scope.get("path")
        if database_unreachable(error):
            self.log.warning(
                "the database is unreachable", extra={"path": path, "error": repr(error)}
            )
            return problem_response(
                ServiceUnavailable.status,
                ServiceUnavailable.slug,
                ServiceUnavailable.title,
                "the database cannot be reached; try again shortly",
                instance=path,
                headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
            )
        self.log.error("unhandled error", extra={"path": path}, exc_info=error)
        return problem_response(500, "internal-error", "Internal error", instance=path)


@dataclass(frozen=True)
class BodyLimit:
    """A route that declares its own body limit (an upload): ``method`` and a ``path`` pattern
    (matched from the start of the path) accept up to ``max_bytes``."""

    method: str
    path: re.Pattern[str]
    max_bytes: int

    def applies(self, scope: Scope) -> bool:
        return scope.get("method") == self.method and bool(self.path.match(scope["path"]))


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes`` (or a route's own ``limits``) with 413, whether or not
    Content-Length is declared."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, limits: Sequence[BodyLimit] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = tuple(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own = next((limit for limit in self.limits if limit.applies(scope)), None)
        max_bytes = own.max_bytes if own is not None else self.max_bytes
        declared = chunked = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = value
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            await self._refuse(scope, receive, send, max_bytes)
            return
        if declared is None and chunked is None:
            # Neither a length nor a chunked body: HTTP/1.1 gives the request no body to count.
            await self.app(scope, receive, send)
            return
        received = 0
        too_large = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The app may turn the failed body read into a response of its own (FastAPI answers
            # 400): the client gets the 413 instead.
            nonlocal refused
            if not too_large:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(scope, receive, send, max_bytes)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not refused:
                refused = True
                await self._refuse(scope, receive, send, max_bytes)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem_response(
            PayloadTooLarge.status,
            PayloadTooLarge.slug,
            PayloadTooLarge.title,
            f"at most {max_bytes} bytes are accepted",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def health_router(checks: Callable[[], Mapping[str, ReadinessCheck]]) -> APIRouter:
    """``/healthz`` (alive), ``/readyz`` (every dependency answers) and ``/metrics``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="The process can serve: its database and broker answer")
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks().items():
            try:
                await check()
            except Exception as exc:  # a readiness probe reports every failure, whatever it is
                results[name] = f"unavailable: {type(exc).__name__}"
            else:
                results[name] = "ok"
        ready = all(value == "ok" for value in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
