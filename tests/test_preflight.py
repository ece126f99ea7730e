"""With PostgreSQL or RabbitMQ unreachable, the commands fail fast with one line per server."""

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def stalled_port() -> Iterator[int]:
    """A listener that accepts connections and never says a word, like a hung server."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(
    args: list[str], *, database_port: int, broker_port: int
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{database_port}/pipedesk",
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{broker_port}/",
    }
    # A hang fails the test instead of blocking the suite (generous: the machine may be loaded).
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("kind", ["closed", "stalled"])
def test_preflight_names_each_unreachable_server_in_one_line(kind: str) -> None:
    if kind == "closed":
        result = run(
            ["-m", "pipedesk_common.preflight"],
            database_port=closed_port(),
            broker_port=closed_port(),
        )
    else:
        with stalled_port() as database, stalled_port() as broker:
            result = run(
                ["-m", "pipedesk_common.preflight"], database_port=database, broker_port=broker
            )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("PostgreSQL is not reachable at 127.0.0.1:")
    assert "pg_ctlcluster" in lines[0]
    assert lines[1].startswith("RabbitMQ is not reachable at 127.0.0.1:")
    assert "rabbitmq-server -detached" in lines[1]
    assert "Traceback" not in result.stderr + result.stdout


def test_only_the_unreachable_server_is_named() -> None:
    result = run(["-m", "pipedesk_common.preflight"], database_port=5432, broker_port=closed_port())
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("RabbitMQ")
    ]
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_suite_refuses_to_run_rather_than_skip(tmp_path: Path) -> None:
    (tmp_path / "test_nothing.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    result = run(
        [
            "-m",
            "pytest",
            "-p",
            "pipedesk_testkit.plugin",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        database_port=closed_port(),
        broker_port=5672,
    )
    assert result.returncode != 0
    assert "PostgreSQL is not reachable" in result.stdout + result.stderr
    assert "passed" not in result.stdout
    assert "skipped" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
