"""The tasks service as the process a deployment runs (``python -m tasks_service``)."""

from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import free_port, run_process

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


async def test_the_process_serves_tasks_from_the_environments_settings(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **stack.service_env,
        "LOG_LEVEL": "WARNING",
        "TASKS_PORT": str(port),
        "CRM_URL": stack.crm_url,
        "ACCOUNTS_URL": stack.google.accounts_url,
        "TASKS_JOBS_ENABLED": "false",
    }
    with run_process(["-m", "tasks_service"], env=env, ready_url=f"{url}/readyz"):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.get("/readyz")).status_code == 200
            created = await client.post(
                "/api/tasks", json={"title": "From the process"}, headers=rep.headers
            )
            assert created.status_code == 201, created.text
    [in_google] = await stack.google_tasks(rep)
    assert in_google["id"] == created.json()["google_id"]
