"""The servers a command needs: a server that answers is used; one that does not is started in a
container when Docker answers; with neither, one line per server names both ways out."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from pipedesk_common.containers import KEEP_SETTING, DockerContainers
from pipedesk_common.preflight import (
    TEST_SERVERS,
    ContainerStartFailed,
    Server,
    Started,
    provide,
    run_with_servers,
)

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def silent_port(*, hang_up: bool) -> Iterator[int]:
    """A listener that never says a word: it keeps every connection, like a hung server, or
    closes it at once (``hang_up``), like Docker's published port while its server starts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection = server.accept()[0]
            except TimeoutError:
                continue
            if hang_up:
                connection.close()
            else:
                accepted.append(connection)

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
    args: list[str],
    *,
    database_port: int,
    broker_port: int,
    home: Path | None = None,
    **settings: str,
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{database_port}/pipedesk",
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{broker_port}/",
        **settings,
    }
    if home is not None:
        # No Docker: its address is a closed port, and no ~/.testcontainers.properties names
        # another.
        env["DOCKER_HOST"] = f"tcp://127.0.0.1:{closed_port()}"
        env["HOME"] = str(home)
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


@pytest.mark.parametrize("kind", ["closed", "stalled", "hanging up"])
def test_preflight_names_each_unreachable_server_in_one_line(kind: str) -> None:
    if kind == "closed":
        result = run(
            ["-m", "pipedesk_common.preflight"],
            database_port=closed_port(),
            broker_port=closed_port(),
        )
    else:
        hang_up = kind == "hanging up"
        with silent_port(hang_up=hang_up) as database, silent_port(hang_up=hang_up) as broker:
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


def test_redis_is_checked_when_the_system_is_told_to_use_it() -> None:
    port = closed_port()
    result = run(
        ["-m", "pipedesk_common.preflight"],
        database_port=5432,
        broker_port=5672,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Redis is not reachable at 127.0.0.1:{port} (")
    assert "redis-server --daemonize yes" in line


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
        home=tmp_path,
    )
    assert result.returncode == 3
    output = result.stdout + result.stderr
    assert "PostgreSQL is not reachable" in output
    # Both ways out: start the server, or start Docker and have it started in a container.
    assert "start it with: pg_ctlcluster" in output
    assert (
        "or have it started in a container: start Docker (Docker does not answer at tcp:" in output
    )
    assert "RabbitMQ" not in output
    assert "passed" not in result.stdout
    assert "skipped" not in result.stdout
    assert "Traceback" not in output


def test_make_run_neither_finding_a_server_nor_docker_runs_nothing(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    result = run(
        ["-m", "pipedesk_common.preflight", "--", "touch", str(ran)],
        database_port=5432,
        broker_port=closed_port(),
        home=tmp_path,
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("RabbitMQ is not reachable at 127.0.0.1:")
    assert "start it with: rabbitmq-server -detached — or have it started in a container" in line
    assert not ran.exists()


def test_make_run_runs_its_command_on_the_servers_that_answer_and_passes_ctrl_c_on(
    tmp_path: Path,
) -> None:
    ready, seen = tmp_path / "ready", tmp_path / "seen"
    waits_for_ctrl_c = (
        "import os, pathlib, signal, sys\n"
        "interrupted = []\n"
        "signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))\n"
        f"pathlib.Path({str(seen)!r}).write_text(os.environ['DATABASE_URL'])\n"
        f"pathlib.Path({str(ready)!r}).write_text('')\n"
        "while not interrupted:\n"
        "    signal.pause()\n"
        "sys.exit(42)\n"
    )
    env = {**os.environ, "DATABASE_URL": POSTGRESQL_URL, "HOME": str(tmp_path)}
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipedesk_common.preflight",
            "--",
            sys.executable,
            "-c",
            waits_for_ctrl_c,
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), process.communicate(timeout=10)
        process.send_signal(signal.SIGINT)  # to the preflight alone: it passes it on
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 42, stderr
    assert seen.read_text() == POSTGRESQL_URL  # the server that answers, as it was given
    assert stdout == ""  # nothing was started in a container, so nothing is said
    assert "Traceback" not in stderr


# The choice, per server, in-process. Only the seam to Docker is stood in for: a daemon that
# answers or not, whose "containers" are this machine's real servers. The checks, the URLs handed
# on, the wait until a started server answers and the removal all run for real.

LOCAL = {server.setting: server.url(os.environ) for server in TEST_SERVERS}
POSTGRESQL_URL = LOCAL["DATABASE_URL"]
BY_NAME = {server.name: server for server in TEST_SERVERS}
each_server = pytest.mark.parametrize("server", TEST_SERVERS, ids=lambda server: server.key)


def closed_url(server: Server) -> str:
    """``server``'s local URL with its port closed: a server that does not answer."""
    scheme, _, rest = LOCAL[server.setting].partition("://")
    login, _, address = rest.rpartition("@")
    path = address.partition("/")[2]
    return f"{scheme}://{login + '@' if login else ''}127.0.0.1:{closed_port()}/{path}"


class DockerOfLocalServers:
    """The ``Containers`` seam: ``answers`` or not; a start hands out ``address`` (default: the
    real local server) or fails; ``witness`` is called at each start and removal."""

    def __init__(
        self,
        *,
        answers: bool = True,
        address: Callable[[Server], str] = lambda server: LOCAL[server.setting],
        fails: frozenset[str] = frozenset(),
        witness: Callable[[], object] = lambda: None,
        keep: bool = False,
    ) -> None:
        self.answers, self.address, self.fails, self.witness = answers, address, fails, witness
        self.keep = keep
        self.calls: list[tuple[object, ...]] = []

    def unavailable(self) -> str | None:
        self.calls.append(("unavailable",))
        return None if self.answers else "Docker does not answer: no daemon on this machine"

    @contextmanager
    def start(self, server: Server, url: str) -> Iterator[Started]:
        self.calls.append(("start", server.name, url, self.witness()))
        if server.name in self.fails:
            raise ContainerStartFailed("image not found")
        try:
            yield Started(self.address(server), f"{server.key}:pinned", kept=self.keep)
        finally:
            self.calls.append(("remove", server.name, self.witness()))


@each_server
def test_a_server_that_answers_is_used_and_docker_is_not_asked(server: Server) -> None:
    docker = DockerOfLocalServers()
    with ExitStack() as stack:
        provision = provide(TEST_SERVERS, LOCAL, docker, stack)
    assert provision.problems == []
    assert provision.urls[server.setting] == LOCAL[server.setting]
    assert provision.environment() == {}
    assert provision.line() is None
    assert docker.calls == []


@each_server
def test_a_server_that_does_not_answer_is_started_in_a_container_when_docker_answers(
    server: Server,
) -> None:
    unanswered = closed_url(server)
    docker = DockerOfLocalServers()
    with ExitStack() as stack:
        provision = provide(TEST_SERVERS, {**LOCAL, server.setting: unanswered}, docker, stack)
        assert provision.problems == []
        assert provision.environment() == {server.setting: LOCAL[server.setting]}
        assert provision.line() == (
            "Started in containers, as no server answered: "
            f"{server.name} at {server.where(LOCAL[server.setting])} ({server.key}:pinned); "
            "removed when this run ends"
        )
        assert docker.calls == [("unavailable",), ("start", server.name, unanswered, None)]
    assert docker.calls[-1] == ("remove", server.name, None)


@each_server
def test_with_neither_the_server_nor_docker_the_line_names_both_ways_out(server: Server) -> None:
    unanswered = closed_url(server)
    docker = DockerOfLocalServers(answers=False)
    with ExitStack() as stack:
        provision = provide(TEST_SERVERS, {**LOCAL, server.setting: unanswered}, docker, stack)
    [problem] = provision.problems
    assert problem.server == server
    assert provision.started == {}
    line = problem.line()
    assert line.startswith(f"{server.name} is not reachable at {server.where(unanswered)} (")
    assert f"start it with: {server.how_to_start} — or have it started in a container: " in line
    assert line.endswith(
        "start Docker (Docker does not answer: no daemon on this machine) and run this again"
    )
    assert docker.calls == [("unavailable",)]


def test_every_server_that_does_not_answer_gets_its_container() -> None:
    docker = DockerOfLocalServers()
    unanswered = {server.setting: closed_url(server) for server in TEST_SERVERS}
    with ExitStack() as stack:
        provision = provide(TEST_SERVERS, unanswered, docker, stack)
        assert provision.environment() == LOCAL
        assert [call[1] for call in docker.calls[1:]] == ["PostgreSQL", "RabbitMQ", "Redis"]
    assert [call[:2] for call in docker.calls[4:]] == [
        ("remove", "Redis"),
        ("remove", "RabbitMQ"),
        ("remove", "PostgreSQL"),
    ]


def test_the_line_says_when_the_containers_are_kept() -> None:
    redis = BY_NAME["Redis"]
    with ExitStack() as stack:
        provision = provide(
            [redis], {"REDIS_URL": closed_url(redis)}, DockerOfLocalServers(keep=True), stack
        )
    line = provision.line()
    assert line is not None
    assert line.endswith("(redis:pinned); kept after this run")


@pytest.mark.parametrize(
    ("value", "keep"), [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)]
)
def test_pipedesk_keep_containers_asks_to_keep_them(value: str, keep: bool) -> None:
    assert DockerContainers.from_environment({KEEP_SETTING: value}).keep is keep
    assert DockerContainers.from_environment({}).keep is False


def test_a_container_that_fails_is_named_and_those_already_started_are_removed() -> None:
    docker = DockerOfLocalServers(fails=frozenset({"RabbitMQ"}))
    unanswered = {server.setting: closed_url(server) for server in TEST_SERVERS}
    with ExitStack() as stack:
        provision = provide(TEST_SERVERS, unanswered, docker, stack)
        assert provision.started == {}
        assert ("remove", "PostgreSQL", None) in docker.calls  # before the run goes on
        assert ("remove", "Redis", None) in docker.calls
    [problem] = provision.problems
    assert problem.server == BY_NAME["RabbitMQ"]
    assert problem.line().endswith(
        "start Docker (its container failed: image not found) and run this again"
    )


def test_a_container_whose_server_never_answers_is_named_and_removed() -> None:
    postgresql = BY_NAME["PostgreSQL"]
    docker = DockerOfLocalServers(address=closed_url)
    with ExitStack() as stack:
        provision = provide(
            [postgresql],
            {"DATABASE_URL": closed_url(postgresql)},
            docker,
            stack,
            ready_seconds=1,
        )
        assert docker.calls[-1][0] == "remove"
    [problem] = provision.problems
    assert "its container at 127.0.0.1:" in problem.line()
    assert "did not answer within 1 s: ConnectionRefusedError" in problem.line()


def test_make_runs_command_gets_the_containers_and_they_are_removed_after_it_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = tmp_path / "seen"
    docker = DockerOfLocalServers(witness=seen.exists)
    postgresql = BY_NAME["PostgreSQL"]
    environ = {"PATH": os.environ["PATH"], "DATABASE_URL": closed_url(postgresql)}
    writes_what_it_got = (
        f"import os, pathlib; pathlib.Path({str(seen)!r}).write_text(os.environ['DATABASE_URL'])"
        "; raise SystemExit(7)"
    )
    code = run_with_servers([sys.executable, "-c", writes_what_it_got], environ, docker)
    assert code == 7
    assert seen.read_text() == POSTGRESQL_URL
    # Started before the command ran, removed once it had ended.
    assert docker.calls == [
        ("unavailable",),
        ("start", "PostgreSQL", environ["DATABASE_URL"], False),
        ("remove", "PostgreSQL", True),
    ]
    assert capsys.readouterr().out == (
        "Started in containers, as no server answered: PostgreSQL at "
        f"{postgresql.where(POSTGRESQL_URL)} (postgresql:pinned); removed when this run ends\n"
    )
