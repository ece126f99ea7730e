"""The gateway's upstream client against a real uvicorn server: whole answers, long answers read
as they come, HEAD and 204, keep-alive reuse, a connection the service closed, and the pool limit.
A short answer is handed back whole even when its body follows its head. And through the gateway:
a long answer arrives intact, a short one with its Content-Length."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from pipedesk_gateway.app import build_app
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_gateway.upstream import (
    ConnectFailed,
    PoolExhausted,
    ReadTimeout,
    UpstreamError,
    UpstreamPool,
)
from pipedesk_testkit.servers import free_port, serve_in_thread

pytestmark = pytest.mark.asyncio

LONG = bytes(range(256)) * 8192  # 2 MiB, far past the client's read-ahead


def _service() -> FastAPI:
    app = FastAPI()
    peers: list[str] = []

    @app.get("/small")
    async def small(request: Request) -> dict[str, object]:
        peers.append(f"{request.client.port if request.client else ''}")
        return {"ok": True, "peer": peers[-1], "query": request.url.query}

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(body, media_type="application/octet-stream", headers={"x-n": "1"})

    @app.get("/long")
    async def long() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(LONG), 65536):
                yield LONG[start : start + 65536]
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(2)
        return {"ok": True}

    @app.delete("/empty", status_code=204)
    async def empty() -> None:
        return None

    @app.head("/small")
    async def head_small() -> Response:
        return Response(headers={"content-length": "42"})

    return app


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    with serve_in_thread(_service()) as url:
        yield url


def _pool(url: str, **overrides: float) -> UpstreamPool:
    settings = {
        "max_connections": 4,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "pool_timeout": 2.0,
        **overrides,
    }
    return UpstreamPool(url, **settings)  # type: ignore[arg-type]


async def _whole(pool: UpstreamPool, method: str, target: bytes, body: bytes = b"") -> bytes:
    answer = await pool.request(method, target, [(b"accept", b"*/*")], body)
    return answer.body + b"".join([chunk async for chunk in answer.rest()])


async def test_a_short_answer_arrives_whole_and_the_connection_is_kept(service_url: str) -> None:
    pool = _pool(service_url)
    first = await pool.request("GET", b"/small?a=1&b=%20", [], b"")
    assert first.complete
    assert first.status == 200
    assert (b"content-type", b"application/json") in first.headers
    second = await pool.request("GET", b"/small", [], b"")
    first_body, second_body = httpx.Response(200, content=first.body), second.body
    assert first_body.json()["query"] == "a=1&b=%20"
    assert first_body.json()["peer"] == httpx.Response(200, content=second_body).json()["peer"]
    await pool.close()


async def test_a_body_goes_up_and_a_long_answer_comes_back_in_pieces(service_url: str) -> None:
    pool = _pool(service_url)
    payload = b"x" * 300_000
    assert await _whole(pool, "POST", b"/echo", payload) == payload
    answer = await pool.request("GET", b"/long", [], b"")
    assert not answer.complete  # more than arrives with the headers
    pieces = [answer.body] + [chunk async for chunk in answer.rest()]
    assert len(pieces) > 2
    assert hashlib.sha256(b"".join(pieces)).digest() == hashlib.sha256(LONG).digest()
    assert (await pool.request("GET", b"/small", [], b"")).status == 200  # reused after it
    await pool.close()


async def test_head_and_no_content_answers_carry_no_body(service_url: str) -> None:
    pool = _pool(service_url)
    head = await pool.request("HEAD", b"/small", [], b"")
    assert head.complete
    assert head.body == b""
    assert (b"content-length", b"42") in head.headers
    empty = await pool.request("DELETE", b"/empty", [], b"")
    assert (empty.status, empty.complete, empty.body) == (204, True, b"")
    assert (await pool.request("GET", b"/small", [], b"")).status == 200
    await pool.close()


async def test_a_kept_connection_the_service_closed_is_replaced_for_a_safe_request() -> None:
    """A server answering once per connection, then closing it as soon as it is idle."""
    served = 0

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = _pool(f"http://127.0.0.1:{port}")
    assert (await pool.request("GET", b"/", [], b"")).body == b"ok"
    await asyncio.sleep(0.2)  # the server has closed the kept connection
    assert (await pool.request("GET", b"/", [], b"")).body == b"ok"
    assert served == 2
    await pool.close()
    server.close()
    await server.wait_closed()


async def test_failures_are_told_apart(service_url: str) -> None:
    with pytest.raises(ConnectFailed):  # nothing listens there
        await _pool(f"http://127.0.0.1:{free_port()}").request("GET", b"/", [], b"")
    pool = _pool(service_url, read_timeout=0.3, max_connections=1, pool_timeout=0.2)
    with pytest.raises(ReadTimeout):
        await pool.request("GET", b"/slow", [], b"")
    holding = await pool.request("GET", b"/long", [], b"")  # keeps the only connection
    with pytest.raises(PoolExhausted):
        await pool.request("GET", b"/small", [], b"")
    holding.close()
    assert (await pool.request("GET", b"/small", [], b"")).status == 200
    await pool.close()


async def test_an_answer_cut_short_is_an_error_not_a_shorter_body() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"a" * 10)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(cut, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = _pool(f"http://127.0.0.1:{port}")
    answer = await pool.request("GET", b"/", [], b"")
    with pytest.raises(UpstreamError):
        async for _ in answer.rest():
            pass
    await pool.close()
    server.close()
    await server.wait_closed()


async def _serving(answer: list[bytes], pause: float = 0.2) -> asyncio.Server:
    """A server writing ``answer``'s parts apart, ``pause`` seconds between them, then closing."""

    async def parts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for index, part in enumerate(answer):
            if index:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(parts, "127.0.0.1", 0)


async def test_a_short_answer_whose_body_follows_its_head_is_handed_back_whole() -> None:
    """A server writes an answer's head and its body apart (uvicorn does): a body of announced
    length up to ``WHOLE_BYTES`` is awaited, and the answer is one piece."""
    server = await _serving([b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", b"hello"])
    pool = _pool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    answer = await pool.request("GET", b"/", [], b"")
    assert (answer.complete, answer.body) == (True, b"hello")
    await pool.close()
    server.close()
    await server.wait_closed()


async def test_a_short_answer_cut_short_is_an_error_before_anything_is_passed_on() -> None:
    server = await _serving([b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n", b"only this"])
    pool = _pool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    with pytest.raises(UpstreamError):
        await pool.request("GET", b"/", [], b"")
    await pool.close()
    server.close()
    await server.wait_closed()


async def test_through_the_gateway_short_answers_have_a_length_and_long_ones_arrive_whole(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Public routes (no token needed: the calendar webhook, the OAuth callback), served by
    uvloop like the gateway in production."""
    service = FastAPI()

    @service.post("/webhooks/google/calendar")
    async def short(request: Request) -> dict[str, object]:
        return {"got": len(await request.body()), "query": request.url.query}

    @service.get("/api/accounts/google/callback")
    async def long() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(LONG), 65536):
                yield LONG[start : start + 65536]

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    with serve_in_thread(service) as service_url:
        monkeypatch.setenv("CALENDAR_URL", service_url)
        monkeypatch.setenv("ACCOUNTS_URL", service_url)
        gateway = build_app(GatewaySettings(**service_env))
        with serve_in_thread(gateway) as gateway_url:
            async with httpx.AsyncClient(timeout=10) as http:
                answers = await asyncio.gather(
                    *(
                        http.post(f"{gateway_url}/webhooks/google/calendar?n={n}", content=b"x" * n)
                        for n in range(20)
                    )
                )
                whole = await http.get(f"{gateway_url}/api/accounts/google/callback")
    for n, answer in enumerate(answers):
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"got": n, "query": f"n={n}"}
        assert answer.headers["content-length"] == str(len(answer.content))
        assert "transfer-encoding" not in answer.headers
        assert answer.headers["x-request-id"]
    assert whole.status_code == 200
    assert hashlib.sha256(whole.content).digest() == hashlib.sha256(LONG).digest()


async def test_a_request_expecting_100_continue_gets_the_services_answer(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service that answers an ``Expect: 100-continue`` with an interim 100 first (as HTTP/1.1
    allows): the gateway has read the body already and asks no such thing."""

    async def service(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        if b"expect: 100-continue" in head:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(service, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("CALENDAR_URL", f"http://127.0.0.1:{port}")
    try:
        with serve_in_thread(build_app(GatewaySettings(**service_env))) as gateway_url:
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.post(
                    f"{gateway_url}/webhooks/google/calendar",
                    content=b"y" * 1000,
                    headers={"Expect": "100-continue"},
                )
    finally:
        server.close()
        await server.wait_closed()
    assert (answer.status_code, answer.text) == (200, "ok")
