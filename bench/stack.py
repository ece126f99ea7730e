"""The system under test: the Procfile's processes with ``make run``'s settings, on the bench's own
``PORT_BASE``, database and broker prefix."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dev_identity.keystore import DEFAULT_AUDIENCE, DEFAULT_ISSUER, KeyStore, TokenMinter
from pipedesk_common.settings import DEV_KEY_DIR, PORT_OFFSETS, port_for

REPO = Path(__file__).resolve().parents[1]
# The processes the benchmarks exercise (the emulator and the demo seeder are not on any path).
PROCESSES = ("identity", "crm", "timeline", "gateway")
READY_PATHS = {
    "identity": "/.well-known/jwks.json",
    "emulator": "/_emulator/clock",
    "crm": "/readyz",
    "timeline": "/readyz",
    "accounts": "/readyz",
    "calendar": "/readyz",
    "tasks": "/readyz",
    "drive": "/readyz",
    "gateway": "/readyz",
}
# Procfile names whose port has another name in the Wiring table.
PORT_NAMES = {"emulator": "google_emulator"}


def procfile_commands(path: Path = REPO / "Procfile") -> dict[str, list[str]]:
    commands = {}
    for line in path.read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            commands[name.strip()] = shlex.split(command)
    return commands


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port_base(start: int = 31000) -> int:
    for base in range(start, 60000, 250):
        if all(_port_free(base + offset) for offset in PORT_OFFSETS.values()):
            return base
    raise RuntimeError("no free PORT_BASE")


@dataclass
class Stack:
    port_base: int
    database_url: str
    broker_prefix: str
    amqp_url: str
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pipedesk-bench-")))
    names: tuple[str, ...] = PROCESSES

    def url(self, process: str) -> str:
        return f"http://127.0.0.1:{port_for(PORT_NAMES.get(process, process), self.port_base)}"

    @property
    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    def start(self, timeout: float = 180.0) -> None:
        for name in self.names:
            self.launch(name)
        deadline = time.monotonic() + timeout
        for name in self.names:
            self.wait_ready(name, deadline - time.monotonic())

    def launch(self, name: str) -> None:
        """Start one of the Procfile's processes (again), its output appended to its log."""
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                procfile_commands()[name],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, name: str, timeout: float = 60.0, path: str | None = None) -> None:
        url = self.url(name) + (path or READY_PATHS[name])
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited; {self.log_tail(name)}")
            try:
                answer = httpx.get(url, timeout=2.0)
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text[:500]}"
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} not ready at {url}; {self.log_tail(name)}\nits last answer: {last}"
                )
            time.sleep(0.1)

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log, for an error that says why it failed."""
        path = self.log_dir / f"{name}.log"
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"no log at {path}"
        return f"the end of {path}:\n" + "\n".join(tail)

    def kill(self, name: str, signum: signal.Signals = signal.SIGKILL) -> None:
        """Send ``signum`` to one process and wait until it has exited."""
        process = self.processes[name]
        process.send_signal(signum)
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def inherited_env() -> dict[str, str]:
    """The caller's environment less where it says the system's processes are: a stack sets its
    own (a ``*_URL`` left over from a test run would send a process to one long gone)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("_URL") and key not in ("PORT_BASE", "BROKER_PREFIX", "VIRTUAL_ENV")
    }


def make_stack(database_url: str, amqp_url: str, port_base: int | None) -> Stack:
    base = port_base or free_port_base()
    prefix = f"bench{os.getpid()}."
    env = {
        **inherited_env(),
        "PORT_BASE": str(base),
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BROKER_PREFIX": prefix,
        # The bench's queues vanish a minute after the run, like a test stack's.
        "BROKER_QUEUE_EXPIRES_MS": "60000",
    }
    return Stack(base, database_url, prefix, amqp_url, env)


def minter() -> TokenMinter:
    store = KeyStore(Path(os.environ.get("DEV_KEY_DIR", REPO / DEV_KEY_DIR)))
    return TokenMinter(
        store.identity_key(),
        issuer=os.environ.get("AUTH_ISSUER", DEFAULT_ISSUER),
        audience=os.environ.get("AUTH_AUDIENCE", DEFAULT_AUDIENCE),
        lifetime_seconds=6 * 3600,
    )
