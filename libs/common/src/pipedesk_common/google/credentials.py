"""Where a Google call's credentials come from. The accounts service implements the provider
(per-user OAuth or domain-wide delegation); production and tests use the same implementation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.auth.credentials import Credentials

from pipedesk_common.errors import AppError


@dataclass(frozen=True)
class GoogleUser:
    """The PipeDesk user whose Google account a call acts for.

    ``email`` (the PipeDesk user's email) is needed only for domain-wide delegation, where it
    names the Workspace user to impersonate; per-user OAuth ignores it.
    """

    org_id: str
    user_id: str
    email: str | None = field(default=None, compare=False)


class CredentialsProvider(Protocol):
    async def credentials(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        """Credentials holding a current access token for these scopes."""
        ...

    async def refreshed(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        """New credentials after Google refused the last token (401): at most once per call."""
        ...


class GoogleNotConnected(AppError):
    """The user has not connected Google, or not for the products a call needs."""

    status, slug, title = 409, "google-not-connected", "Connect your Google account"


class GoogleReconnectRequired(AppError):
    """Google revoked the user's grant: nothing works for them until they connect again."""

    status, slug, title = 409, "google-reconnect-required", "Reconnect your Google account"


class GoogleDelegationRefused(AppError):
    """Google refused the organisation's domain-wide delegation for this user."""

    status, slug, title = 502, "google-delegation-refused", "Google refused delegated access"
