"""What every emulated Google API shares: state, clock, errors, access checks, faults, request log.

Routers (``oauth.py``, ``calendar.py``, ``tasks.py``…) get the ``Emulator`` from the request
(``emulator_of(request)``), check the caller with ``Emulator.authorize(request, scopes)``, raise
``GoogleError`` for Google-shaped errors, and record what they changed through the state they own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from google_emulator.fidelity import method_scopes

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    410: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
# Google answers these in its ``usageLimits`` domain (Calendar and Drive error guides).
USAGE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)


class GoogleError(Exception):
    """An error in Google's shape: ``{"error": {"code", "message", "errors": [...], "status"}}``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        domain: str = "global",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"domain": self.domain, "reason": self.reason, "message": self.message}],
                "status": GOOGLE_STATUS.get(self.code, "UNKNOWN"),
            }
        }
        return JSONResponse(body, status_code=self.code, headers=self.headers)


class EmulatorClock:
    """The emulator's own time: real time plus an offset tests move via ``/_emulator/clock``."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def rfc3339(moment: datetime) -> str:
    """Google's timestamp format: UTC with milliseconds and a Z."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


@dataclass
class AccessToken:
    token: str
    email: str
    scopes: frozenset[str]
    expires_at: datetime
    revoked: bool = False


@dataclass
class Fault:
    """One injected failure: answered instead of the real response, ``remaining`` more times.

    ``after_store``: the call is carried out (a write is stored), then its answer fails: replaced
    by ``status`` (if set), cut off after its headers (``drop``), or held back ``latency_seconds``
    (longer than the caller waits). Only a successful call takes such a fault."""

    status: int
    reason: str = ""
    remaining: int = 1
    retry_after: int | None = None
    latency_seconds: float = 0.0
    user: str | None = None  # only this user's calls (by email); None: everyone's
    after_store: bool = False
    drop: bool = False

    def error(self) -> GoogleError:
        """The Google error this fault answers."""
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
        reason = self.reason or {429: "rateLimitExceeded", 503: "backendError"}.get(
            self.status, "backendError"
        )
        domain = "usageLimits" if reason in USAGE_LIMIT_REASONS else "global"
        return GoogleError(
            self.status, reason, f"Injected fault: {reason}", domain=domain, headers=headers
        )


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    api: str
    user: str | None
    status: int


@dataclass
class FidelityViolation:
    """A response body that does not match its method's schema in Google's discovery document."""

    api_method: str
    path: str
    message: str


@dataclass
class Emulator:
    """All state of one emulator process, in memory."""

    clock: EmulatorClock = field(default_factory=EmulatorClock)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    apis: dict[str, Any] = field(default_factory=dict)
    fidelity_violations: list[FidelityViolation] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Set when the faults are cleared: calls still waiting out a fault's latency go on at once.
    _faults_cleared: asyncio.Event = field(default_factory=asyncio.Event)

    def next_number(self) -> int:
        return next(self._ids)

    def reset(self) -> None:
        """Forget everything: tokens, per-API state, faults, the request log; time is real again."""
        self.clock.offset = timedelta(0)
        self.access_tokens.clear()
        self.requests.clear()
        self.clear_faults()
        self.apis.clear()
        self.fidelity_violations.clear()

    def issue_access_token(
        self, email: str, scopes: Iterable[str], lifetime: int = 3600
    ) -> AccessToken:
        token = AccessToken(
            token="ya29.emu-" + secrets.token_urlsafe(32),
            email=email.lower(),
            scopes=frozenset(scopes),
            expires_at=self.clock.now() + timedelta(seconds=lifetime),
        )
        self.access_tokens[token.token] = token
        return token

    def authorize(self, request: Request, accepted_scopes: Iterable[str]) -> str:
        """The email of the user behind a bearer token holding one of ``accepted_scopes``."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        token = self.access_tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.revoked or token.expires_at <= self.clock.now():
            raise GoogleError(
                401,
                "authError",
                "Request had invalid authentication credentials.",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        if not token.scopes & frozenset(accepted_scopes):
            raise GoogleError(
                403,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
            )
        request.state.emulator_user = token.email
        return token.email

    def inject(self, api_method: str, fault: Fault) -> None:
        """Queue a fault for an API method such as ``calendar.events.list`` (or ``calendar.*``)."""
        self.faults.setdefault(api_method, []).append(fault)

    def bearer_of(self, request: Request) -> str | None:
        """The email behind the request's bearer token, if it names one (valid or not)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = self.access_tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        return token.email if token is not None else None

    def clear_faults(self) -> None:
        """Drop every queued fault, and release the calls still waiting out a fault's latency."""
        self.faults.clear()
        self._faults_cleared.set()
        self._faults_cleared = asyncio.Event()

    def take_fault(self, api_method: str, user: str | None, *, after_store: bool) -> Fault | None:
        """The next injected fault of this kind for this method and caller, counted as taken."""
        api = api_method.split(".", 1)[0]
        for key in (api_method, f"{api}.*"):
            queue = [
                fault
                for fault in self.faults.get(key, [])
                if fault.user in (None, user) and fault.after_store == after_store
            ]
            if not queue:
                continue
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.faults[key].remove(fault)
            return fault
        return None

    async def wait_out(self, fault: Fault) -> None:
        """The fault's latency, cut short when the faults are cleared."""
        if fault.latency_seconds:
            cleared = self._faults_cleared
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(fault.latency_seconds):
                    await cleared.wait()

    async def apply_faults(self, api_method: str, user: str | None = None) -> None:
        """Raise the next injected fault for this method (and this caller, for a fault limited
        to one user), if any, after its latency; faults that strike after the store wait."""
        fault = self.take_fault(api_method, user, after_store=False)
        if fault is None:
            return
        await self.wait_out(fault)
        if fault.status:
            raise fault.error()


def emulator_of(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


async def begin(request: Request, api_method: str) -> tuple[Emulator, str]:
    """The start of every emulated API method: name it in the request log, apply an injected
    fault if one is queued, and check the caller's token holds one of the scopes the method's
    discovery document accepts. Returns (emulator, email)."""
    emulator = emulator_of(request)
    request.state.api_method = api_method
    await emulator.apply_faults(api_method, emulator.bearer_of(request))
    return emulator, emulator.authorize(request, method_scopes(api_method))
