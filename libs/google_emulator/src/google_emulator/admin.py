"""Test and development controls under ``/_emulator``: reset, log, clock, faults, seeding."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from pydantic import BaseModel, Field, model_validator

from google_emulator import tasks
from google_emulator.core import Emulator, Fault, GoogleError, emulator_of, rfc3339
from google_emulator.oauth import Client, ServiceAccount, ensure_user, oauth_state, revoke_user

router = APIRouter(prefix="/_emulator")


class ClockAdvance(BaseModel):
    advance_seconds: float


class FaultSpec(BaseModel):
    api_method: str
    status: int = Field(ge=0, le=599)
    reason: str = ""
    count: int = Field(1, ge=1)
    retry_after: int | None = Field(None, ge=0)
    latency_ms: int = Field(0, ge=0)
    user: str | None = Field(None, description="Only this user's calls (their email)")
    after_store: bool = Field(
        False,
        description="Carry the call out (store the write), then fail its answer: with `status`, "
        "cut it off (`drop`) or hold it `latency_ms` (a timeout for the caller)",
    )
    drop: bool = Field(False, description="With `after_store`: cut the answer off")

    @model_validator(mode="after")
    def _one_failure(self) -> FaultSpec:
        if self.drop and not self.after_store:
            raise ValueError("`drop` needs `after_store`")
        if self.after_store and not (self.status or self.drop or self.latency_ms):
            raise ValueError("an `after_store` fault needs `status`, `drop` or `latency_ms`")
        return self


class ClientSpec(BaseModel):
    client_id: str
    client_secret: str
    redirect_uris: list[str] = []


class ServiceAccountSpec(BaseModel):
    email: str
    public_jwk: dict[str, Any]
    client_id: str | None = Field(
        None, pattern=r"^[0-9]{1,30}$", description="Its numeric unique id (default: a new one)"
    )


class DelegationSpec(BaseModel):
    scopes: list[str] = Field(description="The scopes the client may be delegated, exactly")


class UserSpec(BaseModel):
    email: str
    name: str | None = None


class ConsentSpec(BaseModel):
    declined_scopes: list[str] = Field(
        description="Scopes the user unticks on every later consent screen (sign-in scopes "
        "cannot be unticked)"
    )


class TokenSpec(BaseModel):
    email: str
    scopes: list[str]
    lifetime_seconds: int = Field(3600, ge=1)


def _clock(emulator: Emulator) -> dict[str, Any]:
    return {
        "now": rfc3339(emulator.clock.now()),
        "offset_seconds": emulator.clock.offset.total_seconds(),
    }


@router.post("/reset", status_code=204)
async def reset(request: Request) -> Response:
    """Forget all state; the dev OAuth client stays registered."""
    emulator_of(request).reset()
    return Response(status_code=204)


@router.get("/requests")
async def list_requests(
    request: Request, api: str | None = None, user: str | None = None
) -> list[dict[str, Any]]:
    """The request log, optionally only one API method and/or user."""
    return [
        asdict(logged)
        for logged in emulator_of(request).requests
        if (api is None or logged.api == api) and (user is None or logged.user == user.lower())
    ]


@router.delete("/requests", status_code=204)
async def clear_requests(request: Request) -> Response:
    """Empty the request log."""
    emulator_of(request).requests.clear()
    return Response(status_code=204)


@router.get("/clock")
async def get_clock(request: Request) -> dict[str, Any]:
    """The emulator's current time and its offset from real time."""
    return _clock(emulator_of(request))


@router.post("/clock")
async def advance_clock(request: Request, spec: ClockAdvance) -> dict[str, Any]:
    """Move the emulator's time forward (tokens, codes and timestamps follow it)."""
    emulator = emulator_of(request)
    emulator.clock.advance(timedelta(seconds=spec.advance_seconds))
    return _clock(emulator)


@router.post("/faults", status_code=204)
async def add_fault(request: Request, spec: FaultSpec) -> Response:
    """Queue a fault for an API method (``tasks.tasks.list``) or a whole API (``tasks.*``)."""
    fault = Fault(
        status=spec.status,
        reason=spec.reason,
        remaining=spec.count,
        retry_after=spec.retry_after,
        latency_seconds=spec.latency_ms / 1000,
        user=spec.user.lower() if spec.user else None,
        after_store=spec.after_store,
        drop=spec.drop,
    )
    emulator_of(request).inject(spec.api_method, fault)
    return Response(status_code=204)


@router.delete("/faults", status_code=204)
async def clear_faults(request: Request) -> Response:
    """Drop every queued fault; calls still waiting out a fault's latency go on at once."""
    emulator_of(request).clear_faults()
    return Response(status_code=204)


@router.post("/clients", status_code=204)
async def add_client(request: Request, spec: ClientSpec) -> Response:
    """Register an OAuth client (no redirect URIs = any redirect accepted)."""
    clients = oauth_state(emulator_of(request)).clients
    clients[spec.client_id] = Client(spec.client_id, spec.client_secret, list(spec.redirect_uris))
    return Response(status_code=204)


@router.post("/service-accounts")
async def add_service_account(request: Request, spec: ServiceAccountSpec) -> dict[str, str]:
    """Register a service account's RSA public key; answers its client id."""
    try:
        key = RSAKey.import_key(spec.public_jwk)
    except (JoseError, ValueError, TypeError) as exc:
        raise GoogleError(400, "invalid", f"Invalid public_jwk: {exc}") from exc
    emulator = emulator_of(request)
    email = spec.email.lower()
    client_id = spec.client_id or str(10**20 + emulator.next_number())
    accounts = oauth_state(emulator).service_accounts
    accounts[email] = ServiceAccount(email=email, key=key, client_id=client_id)
    return {"client_id": client_id}


@router.put("/domains/{domain}/delegation/{client_id}", status_code=204)
async def authorise_delegation(
    request: Request, domain: str, client_id: str, spec: DelegationSpec
) -> Response:
    """As a Workspace admin in the admin console: let a service account's client id act for
    the domain's users with these scopes (it replaces what was authorised before)."""
    delegations = oauth_state(emulator_of(request)).delegations
    delegations.setdefault(domain.lower(), {})[client_id] = frozenset(spec.scopes)
    return Response(status_code=204)


@router.delete("/domains/{domain}/delegation/{client_id}", status_code=204)
async def remove_delegation(request: Request, domain: str, client_id: str) -> Response:
    """Withdraw a client id's domain-wide delegation for the domain."""
    oauth_state(emulator_of(request)).delegations.get(domain.lower(), {}).pop(client_id, None)
    return Response(status_code=204)


@router.post("/users")
async def add_user(request: Request, spec: UserSpec) -> dict[str, Any]:
    """Create (or rename) a user."""
    return asdict(ensure_user(emulator_of(request), spec.email, spec.name))


@router.post("/users/{email}/revoke")
async def revoke_user_access(request: Request, email: str) -> dict[str, Any]:
    """Revoke every grant of a user (they removed the app from their Google account): their next
    refresh gets ``invalid_grant``, their access tokens ``401``."""
    return {"revoked": revoke_user(emulator_of(request), email)}


@router.put("/users/{email}/consent", status_code=204)
async def set_consent(request: Request, email: str, spec: ConsentSpec) -> Response:
    """How the user answers later consent screens: granting every scope asked but these."""
    emulator = emulator_of(request)
    user = ensure_user(emulator, email)
    oauth_state(emulator).declined[user.email] = frozenset(spec.declined_scopes)
    return Response(status_code=204)


@router.post("/tokens")
async def mint_token(request: Request, spec: TokenSpec) -> dict[str, Any]:
    """Mint an access token directly, without an OAuth flow."""
    emulator = emulator_of(request)
    ensure_user(emulator, spec.email)
    token = emulator.issue_access_token(spec.email, spec.scopes, spec.lifetime_seconds)
    return {
        "access_token": token.token,
        "expires_in": spec.lifetime_seconds,
        "scope": " ".join(sorted(token.scopes)),
        "token_type": "Bearer",
    }


@router.get("/fidelity")
async def fidelity(request: Request) -> list[dict[str, Any]]:
    """Responses so far that departed from Google's discovery schemas."""
    return [asdict(violation) for violation in emulator_of(request).fidelity_violations]


@router.post("/tasks/{email}/lists/{tasklist}/tasks")
async def seed_task(request: Request, email: str, tasklist: str) -> dict[str, Any]:
    """Create or change a task "in Google" (e.g. completed on a phone); bumps ``updated``."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise GoogleError(400, "parseError", "Parse Error") from exc
    if not isinstance(body, dict):
        raise GoogleError(400, "invalid", "The request body must be a JSON object.")
    base = str(request.base_url).rstrip("/")
    return tasks.seed_task(emulator_of(request), base, email, tasklist, body)
