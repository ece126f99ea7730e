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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pipedesk_common.settings import PORT_OFFSETS

REPO = Path(__file__).resolve().parents[1]

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


@dataclass
class RunningSystem:
    """``make run`` in a clean copy, with its output as it comes (supervisord's lines too)."""

    base: int
    output: list[str]

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.base}"

    def token(self, user: str) -> str:
        for line in self.output:
            fields = line.split()
            if len(fields) == 4 and fields[1] == user and fields[2].startswith("teams="):
                return fields[3]
        raise AssertionError(f"no token printed for {user}")

    def pids(self, process: str) -> list[int]:
        """Every pid supervisord started ``process`` with, oldest first."""
        spawned = re.compile(rf"spawned: '{process}' with pid (\d+)")
        return [int(found[1]) for line in self.output if (found := spawned.search(line))]


@pytest.fixture(scope="module")
def running_system(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    broker_prefix: str,
    service_env: dict[str, str],
) -> Iterator[RunningSystem]:
    copy_of_repo = tmp_path_factory.mktemp("make-run") / "repo"
    clean_copy(copy_of_repo)
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
            output.append(line.rstrip("\n"))
            if output[-1] == "Ctrl-C stops everything.":
                printed.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        assert printed.wait(timeout=420), "\n".join(output[-40:])
        yield RunningSystem(base, output)
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to make's process group
        try:
            process.wait(timeout=60)
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
    assert all(port_free(base + offset) for offset in PORT_OFFSETS.values()), (
        "a process outlived Ctrl-C"
    )


def test_make_run_brings_the_system_up_and_its_examples_work(
    running_system: RunningSystem,
) -> None:
    output, base = running_system.output, running_system.base
    assert any(line.startswith("supervisord runs the Procfile's processes") for line in output)
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
    gateway = running_system.gateway
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


def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        time.sleep(0.1)


def test_a_killed_service_comes_back_and_creates_retried_meanwhile_land_once(
    running_system: RunningSystem,
) -> None:
    """The CRM is SIGKILLed: supervisord starts it again; lead creates that failed while it was
    gone succeed when retried with their Idempotency-Key, and each lead exists once, with one
    timeline item."""
    gateway, output = running_system.gateway, running_system.output
    auth = {"Authorization": f"Bearer {running_system.token('rita')}"}
    first_pid = running_system.pids("crm")[-1]
    os.kill(first_pid, signal.SIGKILL)
    titles = [f"Created while the CRM restarts {uuid.uuid4().hex[:8]} #{n}" for n in range(20)]
    failures = 0
    lead_ids: list[str] = []
    with httpx.Client(base_url=gateway, timeout=30) as http:
        for title in titles:
            key = str(uuid.uuid4())
            deadline = time.monotonic() + 120
            while True:  # a client's retry loop, with the request's own key
                try:
                    answer = http.post(
                        "/api/leads",
                        json={"title": title},
                        headers={**auth, "Idempotency-Key": key},
                    )
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code in (200, 201):
                    lead_ids.append(answer.json()["id"])
                    break
                failures += 1
                assert time.monotonic() < deadline, "the CRM did not come back"
                time.sleep(0.2)
        assert failures > 0, "no create met the CRM's absence"
        assert any(
            "exited: crm (terminated by SIGKILL; not expected)" in line for line in output
        ), "\n".join(output[-40:])
        assert running_system.pids("crm")[-1] != first_pid

        listed: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            page = http.get("/api/leads", params=params, headers=auth)
            assert page.status_code == 200, page.text
            listed += [lead["title"] for lead in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert sorted(title for title in listed if title in titles) == sorted(titles)
        assert len(set(lead_ids)) == len(titles)

        def created_items(lead_id: str) -> list[str]:
            answer = http.get(f"/api/timeline/lead/{lead_id}", headers=auth)
            return [item["title"] for item in answer.json().get("items", [])]

        for lead_id in lead_ids:
            wait_for(
                lambda lead_id=lead_id: created_items(lead_id) == ["Lead created"],
                60,
                f"one timeline item for lead {lead_id}",
            )
