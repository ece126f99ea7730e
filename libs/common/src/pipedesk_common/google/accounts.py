"""``AccountsCredentials``: the credentials provider every Google-facing service uses.

It asks the accounts service (``POST /internal/google/token`` with a service token) for a
short-lived access token per (user, scopes) and keeps it in memory until shortly before it
expires; ``refreshed()`` (after Google answered 401) forces the accounts service to get a new one.
The accounts service's problems (not connected, reconnect required…) are raised as the same
problems, so a route calling Google answers them to its caller unchanged.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import httpx
from google.oauth2.credentials import Credentials

from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.clock import Clock
from pipedesk_common.errors import PROBLEM_TYPE_BASE, AppError, FieldError, ServiceUnavailable
from pipedesk_common.google.calls import GoogleQuotaExhausted
from pipedesk_common.google.credentials import (
    GoogleDelegationRefused,
    GoogleNotConnected,
    GoogleReconnectRequired,
    GoogleUser,
)

if TYPE_CHECKING:
    from pipedesk_common.app import ServiceContext

TOKEN_PATH: Final = "/internal/google/token"  # noqa: S105 - a path, not a secret
# google-auth treats a token as expired 3 min 45 s early; a cached token is dropped before that.
DEFAULT_MARGIN: Final = timedelta(minutes=5)
MAX_CACHED: Final = 10_000


class AccountsUnavailable(ServiceUnavailable):
    slug, title = "accounts-unavailable", "Google credentials are unavailable; retry later"


_PASSED_ON: Final[dict[str, type[AppError]]] = {
    error.slug: error
    for error in (
        GoogleNotConnected,
        GoogleReconnectRequired,
        GoogleDelegationRefused,
        GoogleQuotaExhausted,
    )
}


@dataclass(frozen=True)
class _Cached:
    token: str
    expires_at: datetime


class AccountsCredentials:
    """A ``CredentialsProvider`` backed by the accounts service (see the module docstring)."""

    def __init__(
        self,
        accounts_url: str,
        *,
        http: httpx.AsyncClient,
        service_tokens: ServiceTokenIssuer,
        clock: Clock,
        margin: timedelta = DEFAULT_MARGIN,
    ) -> None:
        self._url = accounts_url.rstrip("/") + TOKEN_PATH
        self._http = http
        self._service_tokens = service_tokens
        self._clock = clock
        self._margin = margin
        self._cache: OrderedDict[tuple[GoogleUser, frozenset[str]], _Cached] = OrderedDict()
        self._locks: dict[tuple[GoogleUser, frozenset[str]], asyncio.Lock] = {}
        self.fetches = 0

    async def credentials(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        key = (user, frozenset(scopes))
        cached = self._fresh(key)
        if cached is None:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:  # concurrent calls for one user share one fetch
                cached = self._fresh(key) or await self._fetch(user, key, force=False)
            self._locks.pop(key, None)
        return Credentials(token=cached.token)  # type: ignore[no-untyped-call]

    async def refreshed(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        key = (user, frozenset(scopes))
        self._cache.pop(key, None)
        fresh = await self._fetch(user, key, force=True)
        return Credentials(token=fresh.token)  # type: ignore[no-untyped-call]

    def forget(self, user: GoogleUser) -> None:
        """Drop every cached token of ``user``."""
        for key in [key for key in self._cache if key[0] == user]:
            del self._cache[key]

    def _fresh(self, key: tuple[GoogleUser, frozenset[str]]) -> _Cached | None:
        cached = self._cache.get(key)
        if cached is None or cached.expires_at - self._margin <= self._clock.now():
            return None
        self._cache.move_to_end(key)
        return cached

    async def _fetch(
        self, user: GoogleUser, key: tuple[GoogleUser, frozenset[str]], *, force: bool
    ) -> _Cached:
        body: dict[str, Any] = {
            "org_id": user.org_id,
            "user_id": user.user_id,
            "scopes": sorted(key[1]),
            "force_refresh": force,
        }
        if user.email is not None:
            body["email"] = user.email
        headers = {"Authorization": f"Bearer {self._service_tokens.token_for('accounts')}"}
        self.fetches += 1
        try:
            response = await self._http.post(self._url, json=body, headers=headers, timeout=15.0)
        except httpx.HTTPError as exc:
            raise AccountsUnavailable(
                "the accounts service could not be reached", headers={"Retry-After": "5"}
            ) from exc
        if response.status_code != 200:
            raise _problem_of(response)
        try:
            answer = response.json()
            cached = _Cached(
                token=str(answer["access_token"]),
                expires_at=datetime.fromisoformat(str(answer["expires_at"])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise AccountsUnavailable(
                "the accounts service answered an unreadable token", headers={"Retry-After": "5"}
            ) from exc
        self._cache[key] = cached
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return cached


def _problem_of(response: httpx.Response) -> AppError:
    """The accounts service's problem as ours, or "unavailable" for anything unexpected."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    slug = str(problem.get("type", "")).removeprefix(PROBLEM_TYPE_BASE)
    error = _PASSED_ON.get(slug)
    if error is None:
        return AccountsUnavailable(
            f"the accounts service answered {response.status_code}", headers={"Retry-After": "5"}
        )
    errors = [FieldError.model_validate(item) for item in problem.get("errors") or []]
    retry_after = response.headers.get("retry-after")
    headers = {"Retry-After": retry_after} if retry_after else None
    return error(problem.get("detail"), errors=errors, headers=headers)


def accounts_credentials(context: ServiceContext) -> AccountsCredentials:
    """The provider of a running service: its HTTP client, service key and clock."""
    return AccountsCredentials(
        context.settings.url_of("accounts"),
        http=context.http,
        service_tokens=context.issuer(),
        clock=context.clock,
    )
