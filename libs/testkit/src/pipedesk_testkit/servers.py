"""Real uvicorn servers for tests that need sockets (streaming, proxies, other processes)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

# How long a server or child process may take to answer its first request: on a loaded machine
# (parallel suites, two cores) a process importing FastAPI, SQLAlchemy and OpenTelemetry and
# connecting to its servers has been seen to take more than 30 s. The wait ends as soon as it
# answers; the limit only bounds a process that never does.
START_TIMEOUT_ENV = "PIPEDESK_TEST_START_TIMEOUT_SECONDS"
DEFAULT_START_TIMEOUT = 120.0


def start_timeout() -> float:
    """The start wait (seconds): ``PIPEDESK_TEST_START_TIMEOUT_SECONDS``, else 120."""
    value = os.environ.get(START_TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_START_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(
            f"{START_TIMEOUT_ENV} must be a number of seconds, not {value!r}"
        ) from None
    if seconds <= 0:
        raise ValueError(f"{START_TIMEOUT_ENV} must be positive, not {value!r}")
    return seconds


# Where ``free_port`` looks: below the ports ``make run``'s tests and the benchmarks start their
# systems at (31000 and up), and outside the range the kernel gives outgoing connections their
# local ports from, which every test's connections to PostgreSQL, RabbitMQ and Redis draw on.
FREE_PORTS = range(10000, 31000)


def ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(int(low), int(high) + 1)


def free_port() -> int:
    """A port free now, for a server in another process that is told its port (a server in this
    process takes ``reserve_port()``, held from the start). Until that server binds, the port may
    still be taken, but never as an outgoing connection's local end: it lies outside the range
    those are drawn from, and it is drawn at random so two runs beside each other rarely meet."""
    ephemeral = ephemeral_ports()
    for _ in range(200):
        port = random.choice(FREE_PORTS)  # noqa: S311 (spreads ports, guards nothing)
        if port in ephemeral:
            continue
        try:
            with reserve_port(port):
                return port
        except OSError:
            continue
    with reserve_port() as sock:
        return port_of(sock)


def reserve_port(port: int = 0) -> socket.socket:
    """A socket bound to ``port`` on 127.0.0.1 (any free one by default), held until a server
    listens on it: from now on no other socket on the machine can take that port, not even an
    outgoing connection picking its local end. Without ``SO_REUSEADDR``: a second socket bound
    with it would otherwise be let in beside one that is not yet listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def wait_until_serving(
    url: str, *, timeout: float | None = None, process: subprocess.Popen[Any] | None = None
) -> None:
    """Return once ``url`` answers (any status); fail if ``process`` exits first or nothing
    answers within ``timeout`` (default: ``start_timeout()``)."""
    timeout = start_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before serving {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError as exc:
            last_error = exc
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last_error}")


@contextmanager
def serve_in_thread(app: Any, *, sock: socket.socket | None = None) -> Iterator[str]:
    """Run an ASGI app on a real uvicorn server in a thread; yields its base URL. It listens on
    ``sock`` (from ``reserve_port()``, for a server whose URL others are told before it starts),
    else on a port reserved here; either way the port is held from before the server starts."""
    listening = sock if sock is not None else reserve_port()
    chosen = port_of(listening)
    config = uvicorn.Config(app, host="127.0.0.1", port=chosen, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listening]}, name=f"uvicorn-{chosen}", daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{chosen}"
    try:
        deadline = time.monotonic() + start_timeout()
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {chosen} did not start")
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listening.close()


@contextmanager
def run_process(
    args: list[str],
    *,
    env: Mapping[str, str],
    ready_url: str | None = None,
    timeout: float | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real child process (a service, a relay) with its own environment; stopped at exit.
    With ``ready_url``, returns once it answers there (within ``timeout``, by default
    ``start_timeout()``), or fails at once if the process exits first.

    Its output goes to a temporary file (a pipe nobody reads would block the child once full).
    """
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(  # noqa: S603 - the tests choose the command
        [sys.executable, *args],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        if ready_url is not None:
            wait_until_serving(ready_url, timeout=timeout, process=process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
