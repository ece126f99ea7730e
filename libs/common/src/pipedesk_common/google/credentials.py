"""Where a Google call's credentials come from. The accounts service implements the provider
(per-user OAuth or domain-wide delegation); production and tests use the same implementation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from google.auth.credentials import Credentials


@dataclass(frozen=True)
class GoogleUser:
    """The PipeDesk user whose Google account a call acts for."""

    org_id: str
    user_id: str


class CredentialsProvider(Protocol):
    async def credentials(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        """Credentials holding a current access token for these scopes."""
        ...

    async def refreshed(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        """New credentials after Google refused the last token (401): at most once per call."""
        ...
