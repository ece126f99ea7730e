"""Fixtures: the calendar service on a real socket (Google's push must reach its webhook), the CRM
it asks about access, the Google emulator and the accounts service (the ``google`` fixture)."""

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

from calendar_service.app import build_app
from calendar_service.models import outbox
from calendar_service.settings import WEBHOOK_PATH, CalendarSettings
from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_common.app import ServiceContext
from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.google import AccountsCredentials, CredentialsProvider, accounts_credentials
from pipedesk_common.google.calls import RetryPolicy
from pipedesk_common.keys import dev_service_key_path
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import ActingUser, Identity
from pipedesk_testkit.outbox import published as outbox_events
from pipedesk_testkit.servers import free_port, serve_in_thread

# Retries as in production, only faster (tests never wait on real backoff).
FAST_RETRIES = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05, max_total_seconds=20)


@pytest.fixture(scope="module")
def crm_url(service_env: dict[str, str]) -> Iterator[str]:
    """The CRM, on a socket: the calendar's access replica asks it about records it has not
    heard of yet. Per module, so its outbox relay never outlives the tests that use it (a relay
    left running would publish what later suites' CRMs commit)."""
    with serve_in_thread(build_crm(CrmSettings(**service_env))) as url:
        yield url


@dataclass
class Calendar:
    """One running calendar service."""

    url: str
    client: httpx.AsyncClient
    app: FastAPI
    identity: Identity
    clock: Clock

    async def run_job(self, name: str) -> dict[str, Any]:
        key = ECKey.import_key(
            dev_service_key_path(self.identity.key_dir, "automation").read_bytes()
        )
        token = ServiceTokenIssuer("automation", key, clock=self.clock).token_for("calendar")
        answer = await self.client.post(
            f"/internal/jobs/{name}", headers={"Authorization": f"Bearer {token}"}
        )
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result


@dataclass
class Stack:
    """The calendar service's world for one test: Google, the CRM, and a way to start the
    calendar service (again: a second process, or after a restart)."""

    google: GoogleStack
    crm: httpx.AsyncClient
    crm_url: str
    service_env: dict[str, str]
    identity: Identity
    database_url: str

    def calendar(
        self, clock: Clock | None = None, **overrides: Any
    ) -> AbstractAsyncContextManager[Calendar]:
        """``async with stack.calendar(clock, **settings) as calendar``: a calendar service."""
        return self._calendar(clock, overrides)

    def real_time_credentials(self, context: ServiceContext) -> CredentialsProvider:
        """The accounts-backed provider, its service tokens on real time: the accounts service
        checks them against its own clock, not the test's."""
        key = ECKey.import_key(dev_service_key_path(self.identity.key_dir, "calendar").read_bytes())
        return AccountsCredentials(
            self.google.accounts_url,
            http=context.http,
            service_tokens=ServiceTokenIssuer("calendar", key, clock=SystemClock()),
            clock=context.clock,
        )

    @asynccontextmanager
    async def _calendar(
        self, clock: Clock | None, overrides: dict[str, Any]
    ) -> AsyncIterator[Calendar]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings = CalendarSettings(
            **{
                **self.service_env,
                "crm_url": self.crm_url,
                "webhook_url": url + WEBHOOK_PATH,
                "jobs_enabled": False,
                **overrides,
            }
        )
        app = build_app(
            settings,
            clock=clock,
            retry_policy=FAST_RETRIES,
            credentials=self.real_time_credentials if clock is not None else accounts_credentials,
        )
        with serve_in_thread(app, port=port):
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                yield Calendar(
                    url=url,
                    client=client,
                    app=app,
                    identity=self.identity,
                    clock=clock or SystemClock(),
                )

    async def connect(self, user: ActingUser) -> None:
        await self.google.connect(user, ["calendar"])

    async def lead(self, owner: ActingUser, title: str = "Acme") -> str:
        answer = await self.crm.post("/api/leads", json={"title": title}, headers=owner.headers)
        answer.raise_for_status()
        lead_id: str = answer.json()["id"]
        return lead_id

    async def google_events(self, user: ActingUser) -> list[dict[str, Any]]:
        """The user's primary calendar as Google holds it (through the seed-free admin view:
        the real API, with a token minted for the check)."""
        token = (
            await self.google.admin(
                "POST",
                "/tokens",
                json={
                    "email": user.principal.email,
                    "scopes": ["https://www.googleapis.com/auth/calendar.readonly"],
                },
            )
        ).json()["access_token"]
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(
                f"{self.google.emulator_url}/calendar/v3/calendars/primary/events",
                params={"maxResults": 2500},
                headers={"Authorization": f"Bearer {token}"},
            )
        answer.raise_for_status()
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def seed(self, method: str, user: ActingUser, path: str = "", **kwargs: Any) -> Any:
        answer = await self.google.admin(
            method, f"/calendar/{user.principal.email}/events{path}", **kwargs
        )
        return answer.json() if answer.content else None

    async def calls(self, user: ActingUser, api: str) -> list[dict[str, Any]]:
        return await self.google.requests(user=user.principal.email, api=api)

    async def published(self, routing_key: str, event_id: str | UUID) -> list[dict[str, Any]]:
        """The data of every event of this kind written for one mirrored event, oldest first."""
        return await outbox_events(self.database_url, outbox, routing_key, event_id)

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
