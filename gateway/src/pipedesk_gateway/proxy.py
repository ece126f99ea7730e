"""Forwarding a request to a service and its answer back, both streamed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

import httpx
from fastapi import Request
from opentelemetry import propagate
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from pipedesk_common.errors import problem_response
from pipedesk_gateway.forwarded import PEER_KEY

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
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
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
    url = httpx.URL(base_url + path, query=request.url.query.encode())
    has_body = request.method not in {"GET", "HEAD", "OPTIONS", "DELETE"} or bool(
        request.headers.get("content-length") or request.headers.get("transfer-encoding")
    )
    upstream_request = client.build_request(
        request.method,
        url,
        headers=_request_headers(request),
        content=request.stream() if has_body else None,
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError):
        return problem_response(
            502,
            "bad-gateway",
            "Bad gateway",
            "the service behind this route is unreachable",
            instance=path,
        )
    except httpx.PoolTimeout:
        return problem_response(
            503,
            "service-unavailable",
            "Service unavailable",
            "every connection to the service behind this route is in use; retry shortly",
            instance=path,
            headers={"Retry-After": "1"},
        )
    except httpx.TimeoutException:
        return problem_response(
            504,
            "gateway-timeout",
            "Gateway timeout",
            "the service behind this route did not answer in time",
            instance=path,
        )
    except httpx.TransportError:
        return problem_response(
            502,
            "bad-gateway",
            "Bad gateway",
            "the connection to the service behind this route failed",
            instance=path,
        )
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
