"""The calls this service makes to Google's OAuth endpoints (authlib builds the flow's pieces).

Nothing here logs a token, a code or a verifier: errors carry Google's error code and
description only.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httplib2
import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import service_account
from google_auth_httplib2 import Request as AuthRequest

from accounts_service.settings import AccountsSettings
from pipedesk_common.clock import Clock
from pipedesk_common.google.calls import GoogleQuotaExhausted

TOKEN_TIMEOUT_SECONDS: Final = 10.0


class OAuthRefused(Exception):
    """Google's token endpoint refused a grant (``invalid_grant``, ``invalid_client``…)."""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_at: datetime
    scopes: tuple[str, ...]
    refresh_token: str | None


@dataclass(frozen=True)
class FlowStart:
    state: str
    code_verifier: str
    authorization_url: str


def state_hash(state: str) -> str:
    """What the database keeps of a state: knowing the table does not let anyone finish a flow."""
    return hashlib.sha256(state.encode()).hexdigest()


class GoogleOAuth:
    def __init__(self, settings: AccountsSettings, http: httpx.AsyncClient, clock: Clock) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock

    def start_flow(self, scopes: Sequence[str], login_hint: str) -> FlowStart:
        """A fresh state and PKCE verifier, and the authorization URL carrying their proofs."""
        state = generate_token(43)
        verifier = generate_token(64)
        url = prepare_grant_uri(
            self._settings.auth_url,
            client_id=self._settings.google_client_id,
            response_type="code",
            redirect_uri=self._settings.redirect_uri,
            scope=" ".join(scopes),
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            access_type="offline",
            include_granted_scopes="true",
            prompt="consent",
            login_hint=login_hint,
        )
        return FlowStart(state=state, code_verifier=verifier, authorization_url=url)

    async def exchange_code(self, code: str, code_verifier: str) -> TokenGrant:
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self._settings.redirect_uri,
                "code_verifier": code_verifier,
                **self._client(),
            }
        )

    async def refresh(self, refresh_token: str) -> TokenGrant:
        return await self._token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token, **self._client()}
        )

    async def delegated(
        self,
        *,
        client_email: str,
        private_key_id: str,
        private_key_pem: str,
        subject: str,
        scopes: Sequence[str],
    ) -> TokenGrant:
        """An access token for ``subject`` through the JWT-bearer grant (RFC 7523), made and
        asked for by google-auth's own service account credentials."""
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            {
                "type": "service_account",
                "client_email": client_email,
                "private_key_id": private_key_id,
                "private_key": private_key_pem,
                "token_uri": self._settings.token_url,
            },
            scopes=list(scopes),
        ).with_subject(subject)
        asked_at, real_start = self._clock.now(), datetime.now(UTC)
        http = httplib2.Http(timeout=TOKEN_TIMEOUT_SECONDS)
        try:
            # google-auth is blocking: off the event loop.
            await asyncio.to_thread(credentials.refresh, AuthRequest(http))
        except RefreshError as refused:
            raise self._delegation_refused(refused) from None
        except (TransportError, OSError, httplib2.HttpLib2Error) as exc:
            raise GoogleQuotaExhausted(
                "Google's OAuth endpoint could not be reached", headers={"Retry-After": "30"}
            ) from exc
        finally:
            http.close()
        # google-auth dates the expiry on real time; the grant is dated on the service's clock.
        lifetime = credentials.expiry.replace(tzinfo=UTC) - real_start
        return TokenGrant(
            access_token=str(credentials.token),
            expires_at=asked_at + lifetime,
            scopes=tuple(sorted(scopes)),
            refresh_token=None,
        )

    @staticmethod
    def _delegation_refused(refused: RefreshError) -> Exception:
        """Google's refusal as ``OAuthRefused``, or a retryable failure as unavailability."""
        body = refused.args[1] if len(refused.args) > 1 else None
        if (
            getattr(refused, "retryable", False)
            or not isinstance(body, dict)
            or "error" not in body
        ):
            return GoogleQuotaExhausted(
                "Google's OAuth endpoint is unavailable", headers={"Retry-After": "30"}
            )
        return OAuthRefused(
            str(body["error"]), str(body.get("error_description", ""))[:300], status=400
        )

    async def revoke(self, token: str) -> bool:
        """Revoke at Google; False if Google no longer knew the token (already revoked)."""
        response = await self._post(self._settings.revoke_url, {"token": token})
        if response.status_code == 200:
            return True
        if response.status_code == 400:
            return False
        raise self._unavailable(response.status_code)

    async def google_email(self, access_token: str) -> str | None:
        try:
            response = await self._http.get(
                self._settings.userinfo_url,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=10.0,
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        email = response.json().get("email")
        return str(email).lower() if email else None

    def _client(self) -> dict[str, str]:
        return {
            "client_id": self._settings.google_client_id,
            "client_secret": self._settings.google_client_secret.get_secret_value(),
        }

    async def _post(self, url: str, form: dict[str, str]) -> httpx.Response:
        try:
            return await self._http.post(url, data=form, timeout=10.0)
        except httpx.HTTPError as exc:
            raise GoogleQuotaExhausted(
                "Google's OAuth endpoint could not be reached", headers={"Retry-After": "30"}
            ) from exc

    @staticmethod
    def _unavailable(status: int) -> GoogleQuotaExhausted:
        return GoogleQuotaExhausted(
            f"Google's OAuth endpoint answered {status}", headers={"Retry-After": "30"}
        )

    async def _token(self, form: dict[str, str]) -> TokenGrant:
        asked_at = self._clock.now()
        response = await self._post(self._settings.token_url, form)
        if response.status_code == 429 or response.status_code >= 500:
            raise self._unavailable(response.status_code)
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise self._unavailable(response.status_code) from None
        if response.status_code != 200 or "access_token" not in body:
            raise OAuthRefused(
                str(body.get("error", "invalid_response")),
                str(body.get("error_description", ""))[:300],
                response.status_code,
            )
        lifetime = int(body.get("expires_in") or 3600)
        return TokenGrant(
            access_token=str(body["access_token"]),
            expires_at=asked_at + timedelta(seconds=lifetime),
            scopes=tuple(sorted(str(body.get("scope", "")).split())),
            refresh_token=body.get("refresh_token"),
        )
