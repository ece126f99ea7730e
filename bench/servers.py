"""A private RabbitMQ node and PostgreSQL cluster, for the chaos suite to crash.

Both run from the machine's own binaries (Debian's ``rabbitmq-server`` and
``/usr/lib/postgresql/<version>/bin``) with their own ports, node name, Erlang port mapper and
data directories, all under one temporary directory: the shared servers (5432, 5672 and their
``/etc`` configuration) are never read, touched or stopped. When run as root (CI), the servers run
as an unprivileged user through ``runuser`` (``initdb`` refuses root): ``CHAOS_USER``, by default
``nobody``, which every Debian system has, so nothing is added to the system.

``PrivateServers`` is a context manager: on leaving it — normally, on an error, on SIGTERM or at
interpreter exit — both servers are stopped (killed if they do not stop) and the directory removed.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

RABBITMQ_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/sbin", "/usr/local/sbin", "/usr/bin")
DEFAULT_USER = "nobody"


class ServersUnavailable(RuntimeError):
    """The machine lacks the binaries (or a user) to run private servers."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def postgres_bin() -> Path:
    """The newest PostgreSQL's binaries: ``/usr/lib/postgresql/<version>/bin``, else ``PATH``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise ServersUnavailable("no PostgreSQL binaries (initdb): apt-get install postgresql")
    return Path(initdb).parent


def rabbitmq_bin() -> Path:
    """Where ``rabbitmq-server`` itself lives (Debian's ``/usr/sbin`` one is a wrapper that
    switches to the system's rabbitmq user and its directories)."""
    for directory in RABBITMQ_DIRS:
        if (Path(directory) / "rabbitmq-server").exists():
            return Path(directory)
    raise ServersUnavailable("no rabbitmq-server: apt-get install rabbitmq-server")


def unprivileged_user() -> str | None:
    """Whom the servers run as: nobody else's but ours when not root; ``CHAOS_USER`` as root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("CHAOS_USER", DEFAULT_USER)
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ServersUnavailable(f"no user {name!r} to run the private servers as") from None
    if shutil.which("runuser") is None:
        raise ServersUnavailable("runuser is missing (util-linux)")
    return name


def wait_for_port(port: int, *, within: float, alive: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + within
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the server for port {port} exited with {alive.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port} after {within:.0f} s")
        time.sleep(0.1)


@dataclass
class PrivateServers:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pipedesk-chaos-")))
    user: str | None = field(default_factory=unprivileged_user)
    pg_port: int = field(default_factory=free_port)
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"pdchaos{os.getpid()}@localhost")
    rabbit: subprocess.Popen[bytes] | None = None
    _closed: bool = False

    @property
    def database_server_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def as_user(self, command: list[str], env: dict[str, str] | None = None) -> list[str]:
        settings = [f"{name}={value}" for name, value in (env or {}).items()]
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return [*prefix, "env", *settings, *command]

    def run(self, command: list[str], env: dict[str, str] | None = None) -> None:
        subprocess.run(self.as_user(command, env), check=True, capture_output=True, timeout=120)

    # --- life ------------------------------------------------------------------------------

    def __enter__(self) -> PrivateServers:
        atexit.register(self.close)
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)  # unwinds through every finally, this one's too

        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, on_term)
        try:
            if self.user is not None:
                entry = pwd.getpwnam(self.user)
                os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.root.chmod(0o700)
            self._init_postgres()
            self.start_postgres()
            self._init_rabbitmq()
            self.start_rabbitmq()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop both servers (killing what does not stop) and remove their directory."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.kill_rabbitmq(signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.run(
                [str(Path(shutil.which("epmd") or "epmd")), "-kill"],
                {"ERL_EPMD_PORT": str(self.epmd_port)},
            )
        with contextlib.suppress(Exception):
            self.stop_postgres(mode="immediate")
        with contextlib.suppress(Exception):
            pid = self.postgres_pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self.close)

    # --- PostgreSQL ------------------------------------------------------------------------

    @property
    def pg_data(self) -> Path:
        return self.root / "postgresql"

    def _init_postgres(self) -> None:
        (self.root / "sockets").mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root / "sockets", entry.pw_uid, entry.pw_gid)
        self.run(
            [
                str(postgres_bin() / "initdb"),
                "-D",
                str(self.pg_data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ]
        )

    def start_postgres(self) -> None:
        options = " ".join(
            [
                f"-p {self.pg_port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root / 'sockets'}",
                "-c max_connections=200",
                # The data lives as long as the run; a crash of the server (not of the machine)
                # loses nothing with these off, and the shared disk is spared.
                "-c fsync=off",
                "-c full_page_writes=off",
            ]
        )
        self.run(
            [
                str(postgres_bin() / "pg_ctl"),
                "-D",
                str(self.pg_data),
                "-l",
                str(self.root / "postgresql.log"),
                "-o",
                options,
                "-w",
                "-t",
                "120",
                "start",
            ]
        )

    def stop_postgres(self, mode: str = "fast") -> None:
        """``fast``: connections are ended and transactions rolled back; ``immediate``: every
        process quits at once, as in a crash, and the next start recovers from the WAL."""
        self.run(
            [str(postgres_bin() / "pg_ctl"), "-D", str(self.pg_data), "-m", mode, "-w", "stop"]
        )

    def postgres_pid(self) -> int | None:
        pidfile = self.pg_data / "postmaster.pid"
        if not pidfile.exists():
            return None
        return int(pidfile.read_text().splitlines()[0])

    # --- RabbitMQ --------------------------------------------------------------------------

    def _rabbit_env(self) -> dict[str, str]:
        home = self.root / "rabbitmq"
        return {
            "HOME": str(home),  # the Erlang cookie lives here
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"),
            # Not the system's /etc/rabbitmq files: they name the shared node's port and name.
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        }

    def _init_rabbitmq(self) -> None:
        home = self.root / "rabbitmq"
        home.mkdir()
        (home / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        (home / "advanced.config").write_text("[].\n")
        (home / "rabbitmq-env.conf").write_text("")
        (home / "enabled_plugins").write_text("[].\n")  # no management listener on 15672
        cookie = home / ".erlang.cookie"
        cookie.write_text(os.urandom(16).hex())
        cookie.chmod(0o400)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in [home, *home.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def start_rabbitmq(self, within: float = 120) -> None:
        log = (self.root / "rabbitmq-server.out").open("ab")
        try:
            self.rabbit = subprocess.Popen(
                self.as_user([str(rabbitmq_bin() / "rabbitmq-server")], self._rabbit_env()),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            wait_for_port(self.amqp_port, within=within, alive=self.rabbit)
        except RuntimeError as failed:
            output = (self.root / "rabbitmq-server.out").read_text(errors="replace")
            raise RuntimeError(f"{failed}; rabbitmq-server said: {output[-3000:]}") from None

    def rabbitmq_pid(self) -> int | None:
        pidfile = self.root / "rabbitmq" / "rabbitmq.pid"
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(pidfile.read_text().strip())
        return None

    def kill_rabbitmq(self, signum: signal.Signals, within: float = 60) -> None:
        """Send ``signum`` to the node (SIGTERM: it stops in order; SIGKILL: it just dies) and
        wait until it is gone."""
        pid = self.rabbitmq_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        if self.rabbit is not None:
            try:
                self.rabbit.wait(timeout=within)
            except subprocess.TimeoutExpired:
                os.killpg(self.rabbit.pid, signal.SIGKILL)
                self.rabbit.wait(timeout=10)
            self.rabbit = None
        (self.root / "rabbitmq" / "rabbitmq.pid").unlink(missing_ok=True)

    def queue_messages(self) -> dict[str, int]:
        """Every queue of the node and the messages in it, as ``rabbitmqctl`` lists them (the
        node's own account, not what the system under test believes it declared)."""
        listed = subprocess.run(
            self.as_user(
                [
                    str(rabbitmq_bin() / "rabbitmqctl"),
                    "-n",
                    self.node,
                    "list_queues",
                    "--quiet",
                    "--no-table-headers",
                    "name",
                    "messages",
                ],
                self._rabbit_env(),
            ),
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        counts = {}
        for line in listed.splitlines():
            name, _, messages = line.rpartition("\t")
            if name:
                counts[name] = int(messages)
        return counts
