"""``make run`` on a clean copy of the repository: it comes up, and what it prints works."""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from pipedesk_common.settings import PORT_OFFSETS

REPO = Path(__file__).resolve().parents[1]
HONCHO_PREFIX = re.compile(r"^\d\d:\d\d:\d\d \S+\s+\| ")

pytestmark = pytest.mark.slow


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port_base() -> int:
    for base in range(21000, 60000, 250):
        if all(port_free(base + offset) for offset in PORT_OFFSETS.values()):
            return base
    raise RuntimeError("no free PORT_BASE")


def clean_copy(destination: Path) -> None:
    """The files a fresh clone would have: tracked and not ignored, nothing built or generated."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.fixture
def copy_of_repo(tmp_path: Path) -> Path:
    clean_copy(tmp_path / "repo")
    return tmp_path / "repo"


def test_make_run_brings_the_system_up_and_its_examples_work(
    copy_of_repo: Path, database_url: str, broker_prefix: str, service_env: dict[str, str]
) -> None:
    base = free_port_base()
    database = (
        database_url.rsplit("/", 1)[0]
        + f"/pd_run_{int(time.time())}_makerun_{uuid.uuid4().hex[:6]}"
    )
    env = {
        **os.environ,
        "PORT_BASE": str(base),
        "DATABASE_URL": database,
        "BROKER_PREFIX": f"{broker_prefix}makerun.",
        "BROKER_QUEUE_EXPIRES_MS": service_env["BROKER_QUEUE_EXPIRES_MS"],
        "BROKER_QUEUE_LEDGER": service_env["BROKER_QUEUE_LEDGER"],
    }
    env.pop("VIRTUAL_ENV", None)
    # `make run` wires its own processes: addresses this test run set for other suites (the
    # `google` fixture's emulator and accounts service) must not leak into it.
    for name in ["GOOGLE_ROOT_URL", *(f"{process.upper()}_URL" for process in PORT_OFFSETS)]:
        env.pop(name, None)
    process = subprocess.Popen(
        ["make", "run"],
        cwd=copy_of_repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    printed = threading.Event()

    def read_output() -> None:  # keep draining, or the processes would block on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            output.append(HONCHO_PREFIX.sub("", line.rstrip("\n")))
            if output[-1] == "Ctrl-C stops everything.":
                printed.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        assert printed.wait(timeout=240), "\n".join(output[-40:])
        examples = [line for line in output if line.startswith("curl -sf ")]
        assert len(examples) == 6, "\n".join(output[-40:])
        assert any(f"Gateway: http://127.0.0.1:{base}" in line for line in output)
        for command in examples:
            result = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False
            )
            assert result.returncode == 0, (command[:80], result.stdout, result.stderr)
            assert result.stdout.startswith("{")
            if "/api/accounts/google" in command:  # the demo connected the user to the emulator
                assert '"status":"connected"' in result.stdout, result.stdout
            if "-X POST" in command and "/api/drive/" in command:  # the demo set the Drive root
                assert '"name":"notes.txt"' in result.stdout, result.stdout
        gateway = f"http://127.0.0.1:{base}"
        assert any(f"Console: {gateway}/app/" in line for line in output)
        users = httpx.get(f"{gateway}/app/session/users", timeout=10)
        assert users.status_code == 200, users.text  # the console signs in as the demo users
        preflight = httpx.options(  # a frontend developed on localhost:3000 may call the API
            f"{gateway}/api/leads",
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization,if-none-match",
            },
            timeout=10,
        )
        assert preflight.headers.get("access-control-allow-origin") == "http://localhost:3000"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-c",
                f'DROP DATABASE IF EXISTS "{database.rsplit("/", 1)[1]}" WITH (FORCE)',
            ],
            capture_output=True,
            check=False,
        )
    assert all(port_free(base + offset) for offset in (0, 90, 91, 101, 102, 103)), (
        "a process outlived Ctrl-C"
    )
