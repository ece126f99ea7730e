import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import pytest_asyncio
from joserfc.jwk import ECKey

from accounts_service.app import build_app
from accounts_service.models import GoogleConnection, seal_context
from accounts_service.settings import AccountsSettings
from accounts_service.vault import Vault
from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.clock import ManualClock
from pipedesk_common.db import connect_raw
from pipedesk_common.google.scopes import products_needing
from pipedesk_common.keys import dev_service_key_path
from pipedesk_testkit.clients import app_client
from pipedesk_testkit.google import CALLBACK_PATH, FRONTEND_URL, GoogleStack
from pipedesk_testkit.identities import ActingUser, Identity

REDIRECT_URI = "http://accounts.test" + CALLBACK_PATH


@dataclass
class Accounts:
    """An accounts app in-process, on a manual clock, talking to the run's emulator."""

    client: httpx.AsyncClient
    clock: ManualClock
    google: GoogleStack
    key_dir: Path
    database_url: str
    callback_path: str = CALLBACK_PATH

    @staticmethod
    def outcome(response: httpx.Response) -> dict[str, list[str]]:
        """The query the callback sent the browser to the frontend with."""
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(FRONTEND_URL)
        return parse_qs(urlparse(location).query)

    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        connection = await connect_raw(self.database_url)
        try:
            return [dict(row) for row in await connection.fetch(query, *args)]
        finally:
            await connection.close()

    async def refresh_token_of(self, user_id: str) -> str:
        """The user's refresh token, as Google issued it (opened from the vault)."""
        query = "SELECT id, refresh_token FROM accounts.google_connections WHERE user_id = $1"
        row = (await self.rows(query, user_id))[0]
        vault: Vault = self.client._transport.app.state.vault  # type: ignore[attr-defined]
        context = seal_context(GoogleConnection, "refresh_token", row["id"])
        return vault.open(row["refresh_token"], context=context)

    async def events(self, routing_key: str, user_id: str) -> list[dict[str, Any]]:
        """The events of ``user_id`` with this routing key in the outbox, oldest first."""
        found = await self.rows(
            "SELECT body FROM accounts.outbox WHERE routing_key = $1 ORDER BY id", routing_key
        )
        bodies = [json.loads(row["body"]) for row in found]
        return [body for body in bodies if body["data"]["user_id"] == user_id]

    def service_key(self, service: str) -> ECKey:
        return ECKey.import_key(dev_service_key_path(self.key_dir, service).read_bytes())

    def internal_as(self, service: str) -> dict[str, str]:
        """Headers of a call from ``service``, its token minted on the app's clock."""
        issuer = ServiceTokenIssuer(service, self.service_key(service), clock=self.clock)
        return {"Authorization": f"Bearer {issuer.token_for('accounts')}"}

    @property
    def internal(self) -> dict[str, str]:
        """Headers of a call from the tasks service."""
        return self.internal_as("tasks")

    async def consent(self, user: ActingUser, products: str = "tasks") -> str:
        """Start connecting and let the emulator consent; the callback URL Google sends back."""
        start = await self.client.get(
            "/api/accounts/google/connect", params={"products": products}, headers=user.headers
        )
        assert start.status_code == 200, start.text
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(start.json()["authorization_url"])
        assert consent.status_code == 302
        return str(consent.headers["location"])

    async def connect(self, user: ActingUser, products: str = "tasks") -> httpx.Response:
        back = urlparse(await self.consent(user, products))
        return await self.client.get(back.path + "?" + back.query)

    async def token(
        self, user: ActingUser, scopes: list[str], *, caller: str | None = None, **extra: Any
    ) -> httpx.Response:
        """Ask for ``user``'s token as ``caller`` (by default, the service of those scopes)."""
        if caller is None:
            products = products_needing(scopes)
            caller = products[0] if len(products) == 1 else "tasks"
        body = {
            "org_id": user.principal.org_id,
            "user_id": user.sub,
            "scopes": scopes,
            **extra,
        }
        return await self.client.post(
            "/internal/google/token", json=body, headers=self.internal_as(caller)
        )


# What the emulator's secrets look like: access tokens, refresh tokens, authorization codes.
SECRET_SHAPES = re.compile(r"ya29\.emu-|1//emu-|4/emu-|4%2Femu-|[?&](code|state)=")
# Every logger of ours and of the libraries on the token's path, at DEBUG (httpx keeps the level
# services configure: its URLs are kept out of the logs on purpose, see observability).
LOGGERS = (
    "accounts_service",
    "pipedesk_common",
    "pipedesk",
    "pipedesk_gateway",
    "authlib",
    "sqlalchemy",
    "uvicorn.error",
    "google_emulator",
)


@pytest.fixture(autouse=True)
def no_secret_in_logs() -> Iterator[list[logging.LogRecord]]:
    """Every test of this suite: everything logged at any level, by the services, the HTTP
    clients and the database layer (in any thread), holds no token or code."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.DEBUG)
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(saved[name])
    formatter = logging.Formatter("%(name)s %(message)s")
    leaked = [
        line
        for line in (formatter.format(record) for record in records)
        if SECRET_SHAPES.search(line)
    ]
    assert leaked == []


@pytest.fixture
def accounts_settings(service_env: dict[str, str], google: GoogleStack) -> AccountsSettings:
    return AccountsSettings(
        **service_env,
        google_redirect_uri=REDIRECT_URI,
        frontend_url=FRONTEND_URL,
    )


@pytest_asyncio.fixture
async def accounts(
    accounts_settings: AccountsSettings,
    google: GoogleStack,
    identity: Identity,
    database_url: str,
) -> AsyncIterator[Accounts]:
    # Real time as a start: the emulator and the token signatures live in real time.
    clock = ManualClock(datetime.now(UTC))
    app = build_app(accounts_settings, clock=clock)
    async with app_client(app, "http://accounts.test") as client:
        yield Accounts(client, clock, google, identity.key_dir, database_url)
    fidelity = await google.admin("GET", "/fidelity")
    assert fidelity.json() == [], "the emulator answered outside Google's schemas"
