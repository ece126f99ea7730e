"""``ServiceUnderTest``: a Google-facing service on a real socket, with the world it runs in.

The world (``World``, the ``world`` fixture) is what every such service needs beside it: the
run's CRM (access lists, the directory), Google (the emulator and the accounts service), the
identity provider and the database. ``ServiceUnderTest`` starts the service (again: a second
process, or after a crash) with the run's settings, runs its jobs, reads what it published and
asks the database; a service's conftest adds only what is its own (seeding its Google product).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
from fastapi import FastAPI
from joserfc.jwk import ECKey
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import create_async_engine

from pipedesk_common.app import ServiceContext, running_context
from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.google import AccountsCredentials, CredentialsProvider, accounts_credentials
from pipedesk_common.google.calls import RetryPolicy
from pipedesk_common.keys import dev_service_key_path
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.mirror.settings import GoogleServiceSettings
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import ActingUser, Identity
from pipedesk_testkit.outbox import published
from pipedesk_testkit.servers import port_of, reserve_port, serve_in_thread

# Retries as in production, only faster (tests never wait on real backoff).
FAST_RETRIES = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05, max_total_seconds=20)


@dataclass
class World:
    """What a service under test runs beside, for one test."""

    google: GoogleStack
    crm: httpx.AsyncClient
    crm_url: str
    service_env: dict[str, str]
    identity: Identity
    database_url: str

    def service_token(self, caller: str, audience: str, clock: Clock | None = None) -> str:
        """A token of service ``caller`` for ``audience`` (minted on ``clock``)."""
        key = ECKey.import_key(dev_service_key_path(self.identity.key_dir, caller).read_bytes())
        return ServiceTokenIssuer(caller, key, clock=clock or SystemClock()).token_for(audience)


@dataclass
class RunningService:
    """One running instance of the service."""

    name: str
    url: str
    client: httpx.AsyncClient
    app: FastAPI
    world: World
    clock: Clock

    @property
    def context(self) -> ServiceContext:
        return running_context(self.app)

    @property
    def runtime(self) -> MirrorRuntime[Any, Any]:
        """The Google service kit's runtime of this instance."""
        runtime: MirrorRuntime[Any, Any] = self.context.part(MirrorRuntime)
        return runtime

    async def internal(
        self,
        method: str,
        path: str,
        *,
        caller: str = "automation",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A call to an ``/internal`` route with a service token of ``caller`` (and ``headers``)."""
        token = self.world.service_token(caller, self.name, self.clock)
        headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def run_job(self, name: str) -> dict[str, Any]:
        """Run a periodic job now (as the automation service does)."""
        answer = await self.internal("POST", f"/internal/jobs/{name}")
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result


@dataclass
class ServiceUnderTest:
    """A Google-facing service and its world (see the module docstring)."""

    world: World
    build_app: Callable[..., FastAPI]
    settings_class: type[GoogleServiceSettings]
    product: str
    outbox: Table
    # Settings that depend on where the service listens (e.g. its webhook address).
    at_url: Callable[[str], dict[str, Any]] = field(default=lambda _url: {})

    @property
    def google(self) -> GoogleStack:
        return self.world.google

    @property
    def crm(self) -> httpx.AsyncClient:
        return self.world.crm

    @property
    def crm_url(self) -> str:
        return self.world.crm_url

    @property
    def service_env(self) -> dict[str, str]:
        return self.world.service_env

    @property
    def database_url(self) -> str:
        return self.world.database_url

    def start(
        self, clock: Clock | None = None, **overrides: Any
    ) -> AbstractAsyncContextManager[RunningService]:
        """``async with stack.start(clock, **settings) as service``: the service on a socket,
        its periodic jobs off (tests run them), the accounts service told where it listens."""
        return self._start(clock, overrides)

    def real_time_credentials(self, context: ServiceContext) -> CredentialsProvider:
        """The accounts-backed provider, its service tokens on real time: the accounts service
        checks them against its own clock, not the test's."""
        key_path = dev_service_key_path(self.world.identity.key_dir, self.product)
        return AccountsCredentials(
            self.google.accounts_url,
            http=context.http,
            service_tokens=ServiceTokenIssuer(
                self.product, ECKey.import_key(key_path.read_bytes()), clock=SystemClock()
            ),
            clock=context.clock,
        )

    @asynccontextmanager
    async def _start(
        self, clock: Clock | None, overrides: dict[str, Any]
    ) -> AsyncIterator[RunningService]:
        sock = reserve_port()
        url = f"http://127.0.0.1:{port_of(sock)}"
        settings = self.settings_class(
            **{
                **self.service_env,
                "crm_url": self.crm_url,
                "jobs_enabled": False,
                **self.at_url(url),
                **overrides,
            }
        )
        app = self.build_app(
            settings,
            clock=clock,
            retry_policy=FAST_RETRIES,
            credentials=self.real_time_credentials if clock is not None else accounts_credentials,
        )
        with serve_in_thread(app, sock=sock), environment(f"{self.product.upper()}_URL", url):
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                yield RunningService(
                    name=settings.service_name,
                    url=url,
                    client=client,
                    app=app,
                    world=self.world,
                    clock=clock or SystemClock(),
                )

    async def connect(self, user: ActingUser) -> None:
        """Connect ``user``'s Google product; they have used PipeDesk, so the directory knows
        them."""
        (await self.crm.get("/api/users", headers=user.headers)).raise_for_status()
        await self.google.connect(user, [self.product])

    async def lead(self, owner: ActingUser, title: str = "Acme") -> str:
        answer = await self.crm.post("/api/leads", json={"title": title}, headers=owner.headers)
        answer.raise_for_status()
        lead_id: str = answer.json()["id"]
        return lead_id

    async def google_token(self, user: ActingUser, scopes: list[str]) -> str:
        """An access token of ``user`` minted by the emulator (to act as the user would)."""
        answer = await self.google.admin(
            "POST", "/tokens", json={"email": user.principal.email, "scopes": scopes}
        )
        token: str = answer.json()["access_token"]
        return token

    async def calls(self, user: ActingUser, api: str) -> list[dict[str, Any]]:
        return await self.google.requests(user=user.principal.email, api=api)

    async def published(self, routing_key: str, entity_id: str | UUID) -> list[dict[str, Any]]:
        """The data of every event of this kind written for one entity, oldest first."""
        return await published(self.database_url, self.outbox, routing_key, entity_id)

    async def health(self, user: ActingUser) -> dict[str, Any]:
        """The user's sync health of this product, as the accounts service answers it."""
        async with httpx.AsyncClient(base_url=self.google.accounts_url, timeout=10) as accounts:
            answer = await accounts.get("/api/accounts/google/health", headers=user.headers)
        answer.raise_for_status()
        [account] = answer.json()["items"]
        products: dict[str, dict[str, Any]] = {
            health["product"]: health for health in account["products"]
        }
        return products.get(self.product, {})

    async def scalar(self, sql: str, **params: Any) -> Any:
        engine = create_async_engine(self.database_url)
        try:
            async with engine.connect() as connection:
                return (await connection.execute(text(sql), params)).scalar()
        finally:
            await engine.dispose()

    async def execute(self, sql: str, **params: Any) -> None:
        engine = create_async_engine(self.database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(sql), params)
        finally:
            await engine.dispose()


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` while the block runs (the accounts service, in this process,
    finds the service under test there)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
