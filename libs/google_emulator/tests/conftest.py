"""Fixtures: one real emulator server per session, reset (and fidelity-checked) around each test."""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document

from google_emulator.app import create_emulator_app
from google_emulator.fidelity import discovery_document
from google_emulator.oauth import DEV_CLIENT_ID, DEV_CLIENT_SECRET
from pipedesk_testkit.servers import serve_in_thread

os.environ["NO_GCE_CHECK"] = "True"

TASKS = "https://www.googleapis.com/auth/tasks"
TASKS_READONLY = "https://www.googleapis.com/auth/tasks.readonly"
DRIVE = "https://www.googleapis.com/auth/drive"
GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
REDIRECT_URI = "http://127.0.0.1:9/callback"


class Harness:
    """Helpers around one running emulator: tokens, the OAuth flow, real Google clients."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.services: list[Any] = []

    def close(self) -> None:
        """Close the clients' connections (httplib2 keeps them open otherwise)."""
        for service in self.services:
            service.close()

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, f"{self.url}/_emulator{path}", **kwargs)
        response.raise_for_status()
        return response

    def mint_token(self, email: str, scopes: list[str], lifetime: int = 3600) -> str:
        """An access token straight from the admin API."""
        body = {"email": email, "scopes": scopes, "lifetime_seconds": lifetime}
        token: str = self.admin("POST", "/tokens", json=body).json()["access_token"]
        return token

    @staticmethod
    def pkce_pair() -> tuple[str, str]:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def authorize_response(self, email: str, scopes: list[str], **params: str) -> httpx.Response:
        query = {
            "client_id": DEV_CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": " ".join(scopes),
            "state": "xyz",
            "code_challenge_method": "S256",
            "login_hint": email,
            **params,
        }
        return httpx.get(f"{self.url}/o/oauth2/v2/auth", params=query)

    def authorize(self, email: str, scopes: list[str], **params: str) -> dict[str, list[str]]:
        """Run the consent redirect; the query of the redirect back to the client."""
        response = self.authorize_response(email, scopes, **params)
        assert response.status_code == 302
        location = response.headers["location"]
        assert location.startswith(REDIRECT_URI + "?")
        return parse_qs(urlparse(location).query)

    def exchange(self, code: str, verifier: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": DEV_CLIENT_ID,
            "client_secret": DEV_CLIENT_SECRET,
            "code_verifier": verifier,
        }
        return httpx.post(f"{self.url}/token", data=form)

    def oauth_login(self, email: str, scopes: list[str], **params: str) -> dict[str, Any]:
        """The token response of a complete code + PKCE flow for offline access."""
        verifier, challenge = self.pkce_pair()
        query = {"access_type": "offline", **params}
        code = self.authorize(email, scopes, code_challenge=challenge, **query)["code"][0]
        response = self.exchange(code, verifier)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def credentials(self, token: str | None, refresh_token: str | None = None) -> Credentials:
        return Credentials(  # type: ignore[no-untyped-call]
            token=token,
            refresh_token=refresh_token,
            token_uri=f"{self.url}/token",
            client_id=DEV_CLIENT_ID,
            client_secret=DEV_CLIENT_SECRET,
        )

    def tasks(self, credentials: Any) -> Any:
        """The real google-api-python-client Tasks v1 service, pointed at the emulator."""
        document = copy.deepcopy(discovery_document("tasks.v1"))
        document["rootUrl"] = self.url + "/"
        service = build_from_document(document, credentials=credentials)
        self.services.append(service)
        return service

    def drive(self, credentials: Any) -> Any:
        """The real google-api-python-client Drive v3 service, pointed at the emulator."""
        document = copy.deepcopy(discovery_document("drive.v3"))
        document["rootUrl"] = self.url + "/"
        service = build_from_document(document, credentials=credentials)
        self.services.append(service)
        return service

    def gmail(self, credentials: Any) -> Any:
        """The real google-api-python-client Gmail v1 service, pointed at the emulator."""
        document = copy.deepcopy(discovery_document("gmail.v1"))
        document["rootUrl"] = self.url + "/"
        service = build_from_document(document, credentials=credentials)
        self.services.append(service)
        return service

    def gmail_for(self, email: str = "ann@example.com", scopes: list[str] | None = None) -> Any:
        """A Gmail service for a user with a freshly minted token (default: read-only)."""
        return self.gmail(self.credentials(self.mint_token(email, scopes or [GMAIL_READONLY])))

    def drive_for(self, email: str = "ann@example.com", scopes: list[str] | None = None) -> Any:
        """A Drive service for a user with a freshly minted token (default: full Drive)."""
        return self.drive(self.credentials(self.mint_token(email, scopes or [DRIVE])))

    def tasks_for(self, email: str = "ann@example.com", scopes: list[str] | None = None) -> Any:
        """A Tasks service for a user with a freshly minted token (default: read-write)."""
        return self.tasks(self.credentials(self.mint_token(email, scopes or [TASKS])))


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[str]:
    with serve_in_thread(create_emulator_app()) as url:
        yield url


@pytest.fixture
def emu(emulator_server: str) -> Iterator[Harness]:
    """A reset emulator; each test must leave no fidelity violations behind."""
    httpx.post(f"{emulator_server}/_emulator/reset").raise_for_status()
    harness = Harness(emulator_server)
    yield harness
    harness.close()
    violations = httpx.get(f"{emulator_server}/_emulator/fidelity").json()
    assert violations == []
