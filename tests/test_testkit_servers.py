"""The testkit's servers. The start wait: a child process is awaited until it answers, as long as
``PIPEDESK_TEST_START_TIMEOUT_SECONDS`` allows (120 s unless set), and a process that exits
before answering fails the wait at once. Ports: a server in the test process listens on a port
held from before it starts, so nothing else on the machine takes it meanwhile."""

from __future__ import annotations

import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pipedesk_testkit.servers import (
    DEFAULT_START_TIMEOUT,
    FREE_PORTS,
    START_TIMEOUT_ENV,
    ephemeral_ports,
    free_port,
    port_of,
    reserve_port,
    run_process,
    serve_in_thread,
    start_timeout,
)


def _bind(port: int, *, reuse: bool) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        if reuse:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", port))


def test_a_reserved_port_is_held_until_the_server_on_it_stops() -> None:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    held = reserve_port()
    port = port_of(held)
    # Taken by nobody else while the server is still to start, not even by a socket that allows
    # address reuse (as uvicorn's own do).
    for reuse in (False, True):
        with pytest.raises(OSError, match="in use"):
            _bind(port, reuse=reuse)
    with serve_in_thread(Starlette(routes=[Route("/", hello)]), sock=held) as url:
        assert url == f"http://127.0.0.1:{port}"
        assert httpx.get(url).text == "hello"
    _bind(port, reuse=True)  # given back once the server stops


def test_a_port_for_another_process_is_never_one_outgoing_connections_draw_on() -> None:
    ephemeral = ephemeral_ports()
    ports = {free_port() for _ in range(50)}
    assert all(port in FREE_PORTS and port not in ephemeral for port in ports)
    assert len(ports) > 40  # drawn at random: runs side by side rarely meet


def test_the_start_wait_is_generous_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(START_TIMEOUT_ENV, raising=False)
    assert start_timeout() == DEFAULT_START_TIMEOUT == 120.0
    monkeypatch.setenv(START_TIMEOUT_ENV, "300")
    assert start_timeout() == 300.0
    monkeypatch.setenv(START_TIMEOUT_ENV, " ")
    assert start_timeout() == DEFAULT_START_TIMEOUT
    for wrong in ("soon", "0", "-5"):
        monkeypatch.setenv(START_TIMEOUT_ENV, wrong)
        with pytest.raises(ValueError, match=START_TIMEOUT_ENV):
            start_timeout()


def test_a_child_process_is_awaited_until_it_answers() -> None:
    port = free_port()
    command = ["-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with run_process(command, env={}, ready_url=f"http://127.0.0.1:{port}/") as process:
        assert process.poll() is None


def test_a_child_process_that_exits_before_answering_fails_the_wait_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Were the exit not noticed, the wait would last the whole start wait.
    monkeypatch.setenv(START_TIMEOUT_ENV, "600")
    port = free_port()
    with (
        pytest.raises(RuntimeError, match="exited with 3"),
        run_process(["-c", "raise SystemExit(3)"], env={}, ready_url=f"http://127.0.0.1:{port}/"),
    ):
        pass
