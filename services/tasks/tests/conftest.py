"""Fixtures: the tasks service on a real socket, the CRM it asks about access, and the Google
emulator and the accounts service (the ``google`` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from joserfc.jwk import ECKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.google.calls import RetryPolicy
from pipedesk_common.keys import dev_service_key_path
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import ActingUser, Identity
from pipedesk_testkit.outbox import published as outbox_events
from pipedesk_testkit.servers import free_port, serve_in_thread
from pipedesk_testkit.waiting import eventually
from tasks_service.app import build_app
from tasks_service.google import SCOPES
from tasks_service.models import outbox
from tasks_service.service import TasksRuntime
from tasks_service.settings import TasksSettings
from tasks_service.sync import poll_key

# Retries as in production, only faster (tests never wait on real backoff).
FAST_RETRIES = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05, max_total_seconds=20)


@pytest.fixture(scope="module")
def crm_url(service_env: dict[str, str]) -> Iterator[str]:
    """The CRM, on a socket: the access replica asks it about records it has not heard of.
    Per module, not per session: its outbox relay must not outlive these tests (suites run
    later measure the CRM's outbox backlog)."""
    with serve_in_thread(build_crm(CrmSettings(**service_env))) as url:
        yield url


@dataclass
class Tasks:
    """One running tasks service."""

    url: str
    client: httpx.AsyncClient
    app: FastAPI
    identity: Identity

    @property
    def runtime(self) -> TasksRuntime:
        runtime: TasksRuntime = self.app.state.tasks
        return runtime

    async def run_job(self, name: str) -> dict[str, Any]:
        key = ECKey.import_key(
            dev_service_key_path(self.identity.key_dir, "automation").read_bytes()
        )
        token = ServiceTokenIssuer("automation", key, clock=SystemClock()).token_for("tasks")
        answer = await self.client.post(
            f"/internal/jobs/{name}", headers={"Authorization": f"Bearer {token}"}
        )
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    async def create(self, user: ActingUser, **body: Any) -> dict[str, Any]:
        answer = await self.client.post("/api/tasks", json=body, headers=user.headers)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created


@dataclass
class Stack:
    """The tasks service's world for one test: Google, the CRM, and a way to start the tasks
    service (again: a second process, or after a crash)."""

    google: GoogleStack
    crm: httpx.AsyncClient
    crm_url: str
    service_env: dict[str, str]
    identity: Identity
    database_url: str

    def tasks(
        self, clock: Clock | None = None, **overrides: Any
    ) -> AbstractAsyncContextManager[Tasks]:
        return self._tasks(clock, overrides)

    @asynccontextmanager
    async def _tasks(self, clock: Clock | None, overrides: dict[str, Any]) -> AsyncIterator[Tasks]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings = TasksSettings(
            **{**self.service_env, "crm_url": self.crm_url, "jobs_enabled": False, **overrides}
        )
        app = build_app(settings, clock=clock, retry_policy=FAST_RETRIES)
        with serve_in_thread(app, port=port):
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                yield Tasks(url=url, client=client, app=app, identity=self.identity)

    async def connect(self, user: ActingUser) -> None:
        await self.google.connect(user, ["tasks"])

    async def lead(self, owner: ActingUser, title: str = "Acme") -> str:
        answer = await self.crm.post("/api/leads", json={"title": title}, headers=owner.headers)
        answer.raise_for_status()
        lead_id: str = answer.json()["id"]
        return lead_id

    async def google_call(
        self, user: ActingUser, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """Call Google Tasks as ``user`` directly (as their phone would)."""
        token = (
            await self.google.admin(
                "POST",
                "/tokens",
                json={"email": user.principal.email, "scopes": list(SCOPES)},
            )
        ).json()["access_token"]
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
        """The user's list as Google holds it (the real API, with a token minted for the check),
        deleted and hidden tasks included."""
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

    async def calls(self, user: ActingUser, api: str) -> list[dict[str, Any]]:
        return await self.google.requests(user=user.principal.email, api=api)

    async def published(self, routing_key: str, task_id: str | UUID) -> list[dict[str, Any]]:
        """The data of every event of this kind written for one task, oldest first."""
        return await outbox_events(self.database_url, outbox, routing_key, task_id)

    async def idle(self, user: ActingUser) -> None:
        """Wait until no poll of ``user``'s lists is pending or running (writes start one)."""

        async def busy() -> bool:
            return bool(
                await self.scalar(
                    "SELECT pending OR lease_until IS NOT NULL FROM tasks.work_requests"
                    " WHERE key = :key",
                    key=poll_key(user.principal.org_id, user.sub),
                )
            )

        await eventually(busy, until=lambda running: not running)

    async def poll(self, tasks: Tasks, user: ActingUser) -> None:
        """Run the periodic poll now (once any poll already going has finished)."""
        await self.idle(user)
        await tasks.run_job("tasks.poll")
        await self.idle(user)

    async def execute(self, sql: str, **params: Any) -> None:
        engine = create_async_engine(self.database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(sql), params)
        finally:
            await engine.dispose()

    async def scalar(self, sql: str, **params: Any) -> Any:
        engine = create_async_engine(self.database_url)
        try:
            async with engine.connect() as connection:
                return (await connection.execute(text(sql), params)).scalar()
        finally:
            await engine.dispose()


@pytest_asyncio.fixture
async def stack(
    google: GoogleStack,
    crm_url: str,
    service_env: dict[str, str],
    identity: Identity,
    database_url: str,
) -> AsyncIterator[Stack]:
    async with httpx.AsyncClient(base_url=crm_url, timeout=30) as crm:
        yield Stack(google, crm, crm_url, service_env, identity, database_url)
