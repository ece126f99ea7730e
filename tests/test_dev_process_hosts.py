"""The Google emulator and the dev identity provider listen where EMULATOR_HOST and
IDENTITY_HOST say (compose sets 0.0.0.0, so other containers and the host's browser reach them),
and on 127.0.0.1 alone by default. The tests use another loopback address, 127.0.0.2, which a
socket bound to 127.0.0.1 does not accept."""

from pathlib import Path

import httpx
import pytest

from pipedesk_common.settings import PORT_OFFSETS
from pipedesk_testkit.servers import free_port, run_process

pytestmark = pytest.mark.slow

PROCESSES = [
    (["-m", "google_emulator"], "google_emulator", "EMULATOR_HOST", "/_emulator/clock"),
    (["-m", "dev_identity", "serve"], "identity", "IDENTITY_HOST", "/healthz"),
]


def environment(process: str, port: int, tmp_path: Path) -> dict[str, str]:
    if process == "google_emulator":
        return {"EMULATOR_PORT": str(port)}
    return {"PORT_BASE": str(port - PORT_OFFSETS["identity"]), "DEV_KEY_DIR": str(tmp_path)}


@pytest.mark.parametrize(("command", "process", "host_variable", "path"), PROCESSES)
def test_it_listens_where_its_host_variable_says(
    command: list[str], process: str, host_variable: str, path: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**environment(process, port, tmp_path), host_variable: "127.0.0.2"}
    with (
        run_process(command, env=env, ready_url=f"http://127.0.0.2:{port}{path}"),
        pytest.raises(httpx.ConnectError),
    ):
        httpx.get(f"http://127.0.0.1:{port}{path}")


@pytest.mark.parametrize(("command", "process", "host_variable", "path"), PROCESSES)
def test_by_default_it_listens_on_127_0_0_1_alone(
    command: list[str], process: str, host_variable: str, path: str, tmp_path: Path
) -> None:
    port = free_port()
    env = environment(process, port, tmp_path)
    with (
        run_process(command, env=env, ready_url=f"http://127.0.0.1:{port}{path}"),
        pytest.raises(httpx.ConnectError),
    ):
        httpx.get(f"http://127.0.0.2:{port}{path}")
