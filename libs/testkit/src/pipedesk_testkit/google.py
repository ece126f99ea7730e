"""Google for tests: the emulator and the accounts service on real sockets, and helpers to
connect test users through the real OAuth flow and to read what Google was asked.

Used through the ``google`` fixture of the plugin (see docs/development.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
from joserfc.jwk import ECKey

from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.google.accounts import AccountsCredentials
from pipedesk_common.keys import dev_service_key_path
from pipedesk_testkit.identities import ActingUser
from pipedesk_testkit.servers import port_of, reserve_port, serve_in_thread

FRONTEND_URL = "http://frontend.test/settings/google"
CALLBACK_PATH = "/api/accounts/google/callback"


class ConnectFailed(AssertionError):
    """The connect flow did not end on the frontend with ``google=connected``."""


@dataclass
class GoogleStack:
    """The run's Google emulator and accounts service, both real uvicorn servers."""

    emulator_url: str
    accounts_url: str
    key_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def root_url(self) -> str:
        """What ``GOOGLE_ROOT_URL`` is set to (with a trailing slash, as the client expects)."""
        return self.emulator_url + "/"

    async def connect(
        self,
        user: ActingUser,
        products: Sequence[str] = ("calendar",),
        *,
        google_email: str | None = None,
    ) -> dict[str, Any]:
        """Connect ``user`` to Google for ``products`` through the real flow: the accounts
        service's authorization URL, the emulator's consent (for the user's email, or the
        Google account ``google_email`` they pick instead), the callback. Returns the
        connection status the accounts service then answers."""
        async with httpx.AsyncClient(timeout=10) as http:
            start = await http.get(
                f"{self.accounts_url}/api/accounts/google/connect",
                params={"products": ",".join(products)},
                headers=user.headers,
            )
            start.raise_for_status()
            authorization = start.json()["authorization_url"]
            if google_email is not None:
                url = urlparse(authorization)
                query = {**parse_qs(url.query), "login_hint": [google_email]}
                authorization = url._replace(query=urlencode(query, doseq=True)).geturl()
            consent = await http.get(authorization)
            if consent.status_code != 302:
                raise ConnectFailed(f"the emulator answered {consent.status_code}")
            back = await http.get(consent.headers["location"])
            location = back.headers.get("location", "")
            outcome = parse_qs(urlparse(location).query).get("google")
            if back.status_code != 302 or outcome != ["connected"]:
                raise ConnectFailed(f"callback answered {back.status_code} → {location!r}")
            status = await http.get(
                f"{self.accounts_url}/api/accounts/google", headers=user.headers
            )
            status.raise_for_status()
            answer: dict[str, Any] = status.json()
            return answer

    async def requests(
        self, *, user: str | None = None, api: str | None = None
    ) -> list[dict[str, Any]]:
        """The emulator's request log (``{method, path, query, api, user, status}``), optionally
        one user's only (by email) and/or one API method's (``tasks.tasks.list``,
        ``oauth2.token``; a token request carries the user its tokens were issued for)."""
        params = {key: value for key, value in (("user", user), ("api", api)) if value}
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{self.emulator_url}/_emulator/requests", params=params)
            response.raise_for_status()
            logged: list[dict[str, Any]] = response.json()
            return logged

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to the emulator's admin API (``/_emulator/...``), e.g. to move its clock."""
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.request(method, f"{self.emulator_url}/_emulator{path}", **kwargs)
            response.raise_for_status()
            return response

    async def revoke(self, token: str) -> None:
        """Revoke a token at Google, as a user removing PipeDesk from their Google account does
        (a refresh token takes every access token minted from it along)."""
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(f"{self.emulator_url}/revoke", data={"token": token})
            response.raise_for_status()

    def credentials(
        self, service: str = "calendar", *, clock: Clock | None = None
    ) -> AbstractAsyncContextManager[AccountsCredentials]:
        """``async with google.credentials("calendar") as provider``: the provider a service
        builds, signing service tokens with that service's dev key. ``clock`` drives only its
        cache (service tokens follow real time, as the accounts server checks them)."""
        return self._credentials(service, clock or SystemClock())

    @asynccontextmanager
    async def _credentials(self, service: str, clock: Clock) -> AsyncIterator[AccountsCredentials]:
        key = ECKey.import_key(dev_service_key_path(self.key_dir, service).read_bytes())
        async with httpx.AsyncClient(timeout=15) as http:
            yield AccountsCredentials(
                self.accounts_url,
                http=http,
                service_tokens=ServiceTokenIssuer(service, key, clock=SystemClock()),
                clock=clock,
            )


@contextmanager
def run_google_stack(service_env: dict[str, str], key_dir: Path) -> Iterator[GoogleStack]:
    """Start the emulator and the accounts service (with the run's database, broker and keys)."""
    from accounts_service.app import build_app
    from accounts_service.settings import AccountsSettings
    from google_emulator.app import create_emulator_app

    with ExitStack() as stack:
        emulator_url = stack.enter_context(serve_in_thread(create_emulator_app()))
        root_url = emulator_url + "/"
        sock = stack.enter_context(reserve_port())
        accounts_url = f"http://127.0.0.1:{port_of(sock)}"
        overrides: dict[str, Any] = {
            **service_env,
            "GOOGLE_ROOT_URL": root_url,
            "google_redirect_uri": accounts_url + CALLBACK_PATH,
            "frontend_url": FRONTEND_URL,
        }
        stack.enter_context(serve_in_thread(build_app(AccountsSettings(**overrides)), sock=sock))
        env = {"GOOGLE_ROOT_URL": root_url, "ACCOUNTS_URL": accounts_url}
        yield GoogleStack(emulator_url, accounts_url, key_dir, env)
