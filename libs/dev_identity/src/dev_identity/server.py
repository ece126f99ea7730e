"""The HTTP face of the dev identity provider: its JWKS, the services' public keys, and sign-in as
one of the demo org's users (for the gateway's console)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dev_identity.demo import ORG, USERS
from dev_identity.keystore import KeyStore, TokenMinter
from pipedesk_common.settings import JWKS_PATH, SERVICE_JWKS_PATH

SESSION_HOURS = 12


class SignIn(BaseModel):
    user: str = Field(min_length=1, max_length=64)


def create_identity_app(store: KeyStore, *, minter: TokenMinter | None = None) -> FastAPI:
    """``minter`` signs the demo users' tokens (default: the store's key, the default issuer and
    audience, 12 hours)."""
    store.ensure()
    signer = minter or TokenMinter(store.identity_key(), lifetime_seconds=SESSION_HOURS * 3600)
    app = FastAPI(title="PipeDesk dev identity provider", version="0.1.0")
    demo_users = {user.sub: user for user in USERS}

    @app.get(JWKS_PATH)
    async def jwks() -> dict[str, Any]:
        return store.jwks()

    @app.get(SERVICE_JWKS_PATH)
    async def service_jwks() -> dict[str, Any]:
        return store.service_jwks()

    @app.get("/dev/users")
    async def users() -> dict[str, Any]:
        """The demo org's users, whom the console offers to sign in as."""
        return {
            "org_id": ORG,
            "users": [
                {"sub": user.sub, "role": user.role, "teams": user.teams, "email": user.email}
                for user in USERS
            ],
        }

    @app.post("/dev/token", response_model=None)
    async def token(body: SignIn) -> dict[str, Any] | JSONResponse:
        """An access token for a demo user: no password, this provider is for development."""
        user = demo_users.get(body.user)
        if user is None:
            return JSONResponse(
                {
                    "type": "urn:pipedesk:problem:not-found",
                    "title": "Not found",
                    "status": 404,
                    "detail": f"no demo user {body.user!r}; the demo users are "
                    + ", ".join(demo_users),
                },
                status_code=404,
                media_type="application/problem+json",
            )
        expires_at = signer.clock.now() + timedelta(seconds=signer.lifetime_seconds)
        return {
            "access_token": user.token(signer),
            "token_type": "Bearer",
            "expires_at": expires_at.isoformat(timespec="seconds"),
            "user": {"sub": user.sub, "org_id": ORG, "role": user.role, "teams": user.teams,
                     "email": user.email},
        }  # fmt: skip

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
