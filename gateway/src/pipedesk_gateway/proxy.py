"""Forwarding a request to a service and its answer back: event streams through httpx, with
heartbeats; every other request through the lean keep-alive client of ``upstream``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import httpx
from fastapi import Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from pipedesk_common.errors import problem_response
from pipedesk_common.observability import inject_trace_context
from pipedesk_gateway.forwarded import PEER_KEY
from pipedesk_gateway.upstream import (
    ConnectFailed,
    PoolExhausted,
    ReadTimeout,
    UpstreamError,
    UpstreamPool,
)

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_FORWARDED_HEADERS: Final = frozenset({"x-forwarded-for", "x-forwarded-proto"})
# The gateway's own server sets these on the way out.
_SERVER_SET: Final = frozenset({"date", "server", "x-request-id"})


def _request_headers(request: Request) -> list[tuple[str, str]]:
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name not in HOP_BY_HOP and name not in {"traceparent", "tracestate", "x-request-id"}
    ]
    # A declared length goes along with the body it measures (streamed as received), so the
    # service can refuse an oversized upload before reading it; a chunked body stays chunked.
    length = request.headers.get("content-length")
    if length is not None and "transfer-encoding" not in request.headers:
        headers.append(("content-length", length))
    carrier: dict[str, str] = {}
    inject_trace_context(carrier)
    headers += list(carrier.items())
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        headers.append(("x-request-id", request_id))
    # The forwarded headers reached here only from a trusted proxy (``forwarded``); the chain
    # goes on with the address the gateway was reached from.
    headers = [(name, value) for name, value in headers if name not in _FORWARDED_HEADERS]
    peer = request.scope.get(PEER_KEY) or (request.client.host if request.client else None)
    if peer:
        forwarded = request.headers.get("x-forwarded-for")
        headers.append(("x-forwarded-for", f"{forwarded}, {peer}" if forwarded else peer))
    headers.append(("x-forwarded-proto", request.url.scheme))
    return headers


async def forward(
    request: Request,
    base_url: str,
    client: httpx.AsyncClient,
    *,
    heartbeat_every: float | None = None,
) -> Response:
    """Send ``request`` to the service at ``base_url``; 502 if it is down, 504 if it is slow."""
    path = request.url.path
    # The path as the client sent it: a percent-encoded "/" inside an id stays one.
    raw_path: bytes = request.scope.get("raw_path") or path.encode()
    url = httpx.URL(base_url + raw_path.decode("ascii"), query=request.url.query.encode())
    has_body = request.method not in {"GET", "HEAD", "OPTIONS", "DELETE"} or bool(
        request.headers.get("content-length") or request.headers.get("transfer-encoding")
    )
    upstream_request = client.build_request(
        request.method,
        url,
        # As received: a header value is bytes (Latin-1 to Starlette), not always ASCII.
        headers=[
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in _request_headers(request)
        ],
        content=request.stream() if has_body else None,
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError):
        return _failure(ConnectFailed(), path)
    except httpx.PoolTimeout:
        return _failure(PoolExhausted(), path)
    except httpx.TimeoutException:
        return _failure(ReadTimeout(), path)
    except httpx.TransportError:
        return _failure(UpstreamError(), path)
    headers = {
        name: value
        for name, value in upstream.headers.items()
        if name.lower() not in HOP_BY_HOP | _SERVER_SET
    }
    location = headers.get("location")
    if location and location.startswith(base_url):
        headers["location"] = location[len(base_url) :] or "/"  # never leak internal addresses
    body: AsyncIterator[bytes] = upstream.aiter_raw()
    if heartbeat_every is not None:
        body = with_heartbeats(body, heartbeat_every)
    return StreamingResponse(
        _guarded(body),
        status_code=upstream.status_code,
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )


async def _guarded(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Once the status line is out, a failing upstream can only end the response early."""
    try:
        async for chunk in body:
            yield chunk
    except (httpx.HTTPError, asyncio.CancelledError):
        return


async def with_heartbeats(chunks: AsyncIterator[bytes], every: float) -> AsyncIterator[bytes]:
    """Pass an event stream through, adding an SSE comment when it has been quiet for ``every``
    seconds — only between events, never inside one — so idle intermediaries keep it open."""
    iterator = chunks.__aiter__()
    pending: asyncio.Future[bytes] = asyncio.ensure_future(iterator.__anext__())
    between_events = True
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                if between_events:
                    yield b": keep-alive\n\n"
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            between_events = chunk.endswith(b"\n\n")
            yield chunk
            pending = asyncio.ensure_future(iterator.__anext__())
    finally:
        pending.cancel()


# The body has been read whole before it is forwarded: a service asked to "Expect:
# 100-continue" would answer 100 first, which is not its answer.
_REQUEST_DROPPED: Final = HOP_BY_HOP | {"traceparent", "tracestate", "x-request-id", "expect"}
_RESPONSE_DROPPED: Final = (HOP_BY_HOP - {"content-length"}) | _SERVER_SET
# The same sets as the raw (lower-case, Latin-1) header names the servers hand over.
_REQUEST_DROPPED_RAW: Final = frozenset(
    name.encode("latin-1") for name in _REQUEST_DROPPED | _FORWARDED_HEADERS
)
_RESPONSE_DROPPED_RAW: Final = frozenset(name.encode("latin-1") for name in _RESPONSE_DROPPED)


def upstream_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The request's headers for the service: hop-by-hop ones out; the trace context, the
    request id and the forwarding headers set by the gateway."""
    headers = [
        (name, value) for name, value in scope["headers"] if name not in _REQUEST_DROPPED_RAW
    ]
    carrier: dict[str, str] = {}
    inject_trace_context(carrier)
    headers += [(name.encode(), value.encode()) for name, value in carrier.items()]
    request_id = scope.get("state", {}).get("request_id")
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    # The forwarded headers reached here only from a trusted proxy (``forwarded``); the chain
    # goes on with the address the gateway was reached from.
    client = scope.get("client")
    peer = scope.get(PEER_KEY) or (client[0] if client else None)
    if peer:
        forwarded = next((v for n, v in scope["headers"] if n == b"x-forwarded-for"), None)
        host = str(peer).encode()
        headers.append((b"x-forwarded-for", forwarded + b", " + host if forwarded else host))
    headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    return headers


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body (the body limit bounds it); None if the client went away."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _failure(error: Exception, path: str) -> Response:
    if isinstance(error, PoolExhausted):
        return problem_response(
            503,
            "service-unavailable",
            "Service unavailable",
            "every connection to the service behind this route is in use; retry shortly",
            instance=path,
            headers={"Retry-After": "1"},
        )
    if isinstance(error, ReadTimeout):
        return problem_response(
            504,
            "gateway-timeout",
            "Gateway timeout",
            "the service behind this route did not answer in time",
            instance=path,
        )
    detail = (
        "the service behind this route is unreachable"
        if isinstance(error, ConnectFailed)
        else "the connection to the service behind this route failed"
    )
    return problem_response(502, "bad-gateway", "Bad gateway", detail, instance=path)


async def relay(
    scope: Scope, receive: Receive, send: Send, base_url: str, pool: UpstreamPool
) -> None:
    """Forward a (non-streaming) request to the service and its answer back: an answer that
    has arrived whole goes out in one piece with its Content-Length, a longer one as it comes."""
    path: str = scope["path"]
    body = await read_body(receive)
    if body is None:
        return
    target = scope.get("raw_path") or path.encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    try:
        answer = await pool.request(scope["method"], target, upstream_headers(scope), body)
    except (UpstreamError, PoolExhausted, ReadTimeout) as error:
        await _failure(error, path)(scope, receive, send)
        return
    headers = []
    for name, value in answer.headers:
        if name in _RESPONSE_DROPPED_RAW:
            continue
        if name == b"location" and value.startswith(base_url.encode()):
            headers.append((name, value[len(base_url) :] or b"/"))  # no internal addresses
        else:
            headers.append((name, value))
    if answer.complete:
        if scope["method"] != "HEAD":
            headers = [(n, v) for n, v in headers if n != b"content-length"]
            headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        return
    # Once the status line is out, a failing service can only end the answer early: it goes
    # out chunked, whatever length the service announced.
    headers = [(n, v) for n, v in headers if n != b"content-length"]
    try:
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        if answer.body:
            await send({"type": "http.response.body", "body": answer.body, "more_body": True})
        with contextlib.suppress(UpstreamError, ReadTimeout):
            async for chunk in answer.rest():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        answer.close()
