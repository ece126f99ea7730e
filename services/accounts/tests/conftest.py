from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import pytest_asyncio
from joserfc.jwk import ECKey

from accounts_service.app import build_app
from accounts_service.settings import AccountsSettings
from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.clock import ManualClock
from pipedesk_common.keys import dev_service_key_path
from pipedesk_common.testing.clients import app_client
from pipedesk_common.testing.google import CALLBACK_PATH, FRONTEND_URL, GoogleStack
from pipedesk_common.testing.plugin import ActingUser, Identity

REDIRECT_URI = "http://accounts.test" + CALLBACK_PATH


@dataclass
class Accounts:
    """An accounts app in-process, on a manual clock, talking to the run's emulator."""

    client: httpx.AsyncClient
    clock: ManualClock
    google: GoogleStack
    service_key: ECKey

    @property
    def internal(self) -> dict[str, str]:
        """Headers of a call from the calendar service, its token minted on the app's clock."""
        issuer = ServiceTokenIssuer("calendar", self.service_key, clock=self.clock)
        return {"Authorization": f"Bearer {issuer.token_for('accounts')}"}

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

    async def token(self, user: ActingUser, scopes: list[str], **extra: Any) -> httpx.Response:
        body = {
            "org_id": user.principal.org_id,
            "user_id": user.sub,
            "scopes": scopes,
            **extra,
        }
        return await self.client.post("/internal/google/token", json=body, headers=self.internal)


def outcome_of(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(FRONTEND_URL)
    return parse_qs(urlparse(location).query)


@pytest.fixture
def accounts_settings(service_env: dict[str, str], google: GoogleStack) -> AccountsSettings:
    return AccountsSettings(
        **service_env,
        google_redirect_uri=REDIRECT_URI,
        frontend_url=FRONTEND_URL,
    )


@pytest_asyncio.fixture
async def accounts(
    accounts_settings: AccountsSettings, google: GoogleStack, identity: Identity
) -> AsyncIterator[Accounts]:
    # Real time as a start: the emulator and the token signatures live in real time.
    clock = ManualClock(datetime.now(UTC))
    app = build_app(accounts_settings, clock=clock)
    async with app_client(app, "http://accounts.test") as client:
        key = ECKey.import_key(dev_service_key_path(identity.key_dir, "calendar").read_bytes())
        yield Accounts(client, clock, google, key)
