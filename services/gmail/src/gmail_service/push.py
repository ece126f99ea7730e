"""Gmail's push notifications: Pub/Sub push envelopes, accepted only with Google's OIDC token.

Pub/Sub signs each push with an ID token of the subscription's service account. It is verified
with google-auth's own ``id_token.verify_token``: the signature against the keys published at
``GMAIL_PUSH_CERTS_URL`` (Google's by default; the emulator publishes its own), the expiry, and
the audience; then the issuer is Google's and the token names the configured push service
account (its verified email). Anything else is ``401`` and nothing is queued. The keys are
fetched once and kept for ``CERTS_TTL``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import urllib3
from google.auth import exceptions as auth_exceptions
from google.auth.transport import Request as AuthRequest
from google.auth.transport import Response as AuthResponse
from google.auth.transport.urllib3 import Request as Urllib3Request
from google.oauth2 import id_token

from gmail_service.settings import GmailSettings
from pipedesk_common.errors import InvalidInput, Unauthorized

GOOGLE_ISSUERS: Final = frozenset({"accounts.google.com", "https://accounts.google.com"})
CERTS_TTL: Final = 300.0
CLOCK_SKEW_SECONDS: Final = 10


@dataclass(frozen=True)
class Notification:
    email_address: str
    history_id: str


class _CachedResponse(AuthResponse):
    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, headers, data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> dict[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class CertsRequest(AuthRequest):
    """google-auth's transport for the certificate fetch, keeping a good answer a while."""

    def __init__(self) -> None:
        self._request = Urllib3Request(urllib3.PoolManager(timeout=10.0))  # type: ignore[no-untyped-call]
        self._kept: dict[str, tuple[float, _CachedResponse]] = {}

    def __call__(  # type: ignore[override]
        self, url: str, method: str = "GET", **kwargs: Any
    ) -> AuthResponse:
        kept = self._kept.get(url)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        answer = self._request(url, method=method, **kwargs)
        response = _CachedResponse(answer.status, dict(answer.headers), answer.data)
        if answer.status == 200:
            self._kept[url] = (time.monotonic() + CERTS_TTL, response)
        return response


class PushVerifier:
    def __init__(self, settings: GmailSettings) -> None:
        self.settings = settings
        self.request = CertsRequest()

    async def verify(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims; ``Unauthorized`` unless it is Google's, for us, of our account."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("a Pub/Sub push carries a bearer ID token")
        try:
            claims: Mapping[str, Any] = await asyncio.to_thread(
                id_token.verify_token,
                token.strip(),
                self.request,
                audience=self.settings.audience,
                certs_url=self.settings.push_certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except (ValueError, auth_exceptions.GoogleAuthError) as error:
            raise Unauthorized(f"the push token is not valid: {error}") from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthorized("the push token is not Google's")
        if (
            claims.get("email") != self.settings.push_service_account
            or claims.get("email_verified") is not True
        ):
            raise Unauthorized("the push token is not the push subscription's account")
        return dict(claims)


def notification(envelope: Any) -> Notification:
    """The mailbox and history id a Pub/Sub envelope announces (``InvalidInput`` otherwise)."""
    message = envelope.get("message") if isinstance(envelope, dict) else None
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, str):
        raise InvalidInput("message.data: a Pub/Sub push envelope carries base64 data")
    try:
        payload = json.loads(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        raise InvalidInput("message.data: not base64 JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("message.data: not a Gmail notification")
    address, history = payload.get("emailAddress"), payload.get("historyId")
    if not isinstance(address, str) or not isinstance(history, int | str):
        raise InvalidInput("message.data: emailAddress and historyId are required")
    return Notification(address.lower(), str(history))
