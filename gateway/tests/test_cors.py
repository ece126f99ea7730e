"""The gateway's CORS layer answers as Starlette's CORS middleware does, whatever the request's
origin and the answer's ``Vary`` headers: its shorter way for requests without an ``Origin``
changes no answer."""

from __future__ import annotations

import pytest
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipedesk_gateway.app import CORS_EXPOSED_HEADERS, CORS_REQUEST_HEADERS, METHODS, Cors

pytestmark = pytest.mark.asyncio

ORIGIN = "https://app.pipedesk.example"
ANSWERS = {
    "no vary": [(b"content-type", b"application/json")],
    "one vary": [(b"vary", b"Accept-Encoding"), (b"content-length", b"2")],
    "two varies": [(b"vary", b"Accept"), (b"etag", b'"1"'), (b"vary", b"Cookie, Authorization")],
}
REQUESTS = {
    "no origin": ("GET", []),
    "allowed origin": ("GET", [(b"origin", ORIGIN.encode())]),
    "foreign origin": ("GET", [(b"origin", b"https://evil.example")]),
    "preflight": (
        "OPTIONS",
        [(b"origin", ORIGIN.encode()), (b"access-control-request-method", b"POST")],
    ),
    "options without origin": ("OPTIONS", [(b"access-control-request-method", b"POST")]),
}


def _service(headers: list[tuple[bytes, bytes]]) -> ASGIApp:
    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"{}"})

    return answer


async def _messages(app: ASGIApp, method: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": method,
        "path": "/api/leads/l1",
        "raw_path": b"/api/leads/l1",
        "query_string": b"",
        "headers": [(b"host", b"gateway"), (b"authorization", b"Bearer t"), *headers],
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("request_kind", REQUESTS)
async def test_cors_answers_as_starlettes_middleware(answer: str, request_kind: str) -> None:
    options = {
        "allow_origins": [ORIGIN],
        "allow_methods": METHODS,
        "allow_headers": CORS_REQUEST_HEADERS,
        "expose_headers": CORS_EXPOSED_HEADERS,
        "max_age": 600,
    }
    method, headers = REQUESTS[request_kind]
    service = _service(ANSWERS[answer])
    ours = await _messages(Cors(service, **options), method, headers)
    starlettes = await _messages(CORSMiddleware(service, **options), method, headers)
    assert ours == starlettes
    vary = [value for name, value in ours[0]["headers"] if name == b"vary"]
    assert len(vary) == 1
    assert b"Origin" in vary[0].split(b", ")
