"""The tasks service under test, with helpers to see and change what Google holds (as the user
would on their phone) and to run the poll."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipedesk_common.google import PRODUCT_SCOPES
from pipedesk_testkit.identities import ActingUser
from pipedesk_testkit.service import RunningService, ServiceUnderTest, World
from pipedesk_testkit.waiting import eventually
from tasks_service.app import build_app
from tasks_service.models import TABLES
from tasks_service.settings import TasksSettings
from tasks_service.sync import poll_key


class TasksStack(ServiceUnderTest):
    async def google_call(
        self, user: ActingUser, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """Call Google Tasks as ``user`` directly (as their phone would)."""
        token = await self.google_token(user, list(PRODUCT_SCOPES["tasks"]))
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.request(
                method,
                f"{self.google.emulator_url}{path}",
                headers={"Authorization": f"Bearer {token}"},
                **kwargs,
            )

    async def google_tasks(
        self, user: ActingUser, tasklist: str = "@default"
    ) -> list[dict[str, Any]]:
        """The user's list as Google holds it, deleted and hidden tasks included."""
        answer = await self.google_call(
            user,
            "GET",
            f"/tasks/v1/lists/{tasklist}/tasks",
            params={"maxResults": 100, "showDeleted": "true", "showHidden": "true"},
        )
        answer.raise_for_status()
        items: list[dict[str, Any]] = answer.json().get("items", [])
        return items

    async def seed(self, user: ActingUser, tasklist: str, body: dict[str, Any]) -> dict[str, Any]:
        """Change a task "in Google" (as the user would on their phone)."""
        answer = await self.google.admin(
            "POST", f"/tasks/{user.principal.email}/lists/{tasklist}/tasks", json=body
        )
        seeded: dict[str, Any] = answer.json()
        return seeded

    async def fidelity_violations(self) -> list[dict[str, Any]]:
        """Answers of the emulator that departed from Google's discovery schemas, so far."""
        found: list[dict[str, Any]] = (await self.google.admin("GET", "/fidelity")).json()
        return found

    async def pending_poll(self, user: ActingUser) -> bool:
        """Whether a poll of ``user``'s lists is asked for and not started."""
        return bool(
            await self.scalar(
                "SELECT pending FROM tasks.work_requests WHERE key = :key",
                key=str(poll_key(user.principal.org_id, user.sub)),
            )
        )

    async def idle(self, user: ActingUser) -> None:
        """Wait until no poll of ``user``'s lists is pending or running (writes start one)."""

        async def busy() -> bool:
            return bool(
                await self.scalar(
                    "SELECT pending OR lease_until IS NOT NULL FROM tasks.work_requests"
                    " WHERE key = :key",
                    key=str(poll_key(user.principal.org_id, user.sub)),
                )
            )

        await eventually(busy, until=lambda running: not running)

    async def create(
        self, service: RunningService, user: ActingUser, **body: Any
    ) -> dict[str, Any]:
        """A task created through the API (``201``)."""
        answer = await service.client.post("/api/tasks", json=body, headers=user.headers)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    async def poll(self, tasks: RunningService, user: ActingUser) -> None:
        """Run the periodic poll now (once any poll already going has finished)."""
        await self.idle(user)
        await tasks.run_job("tasks.poll")
        await self.idle(user)


@pytest.fixture
def stack(world: World) -> TasksStack:
    return TasksStack(
        world,
        build_app=build_app,
        settings_class=TasksSettings,
        product="tasks",
        outbox=TABLES.outbox,
    )
