"""The HTTP face of the dev identity provider: its JWKS and the services' public keys."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from dev_identity.keystore import KeyStore
from pipedesk_common.settings import JWKS_PATH, SERVICE_JWKS_PATH


def create_identity_app(store: KeyStore) -> FastAPI:
    store.ensure()
    app = FastAPI(title="PipeDesk dev identity provider", version="0.1.0")

    @app.get(JWKS_PATH)
    async def jwks() -> dict[str, Any]:
        return store.jwks()

    @app.get(SERVICE_JWKS_PATH)
    async def service_jwks() -> dict[str, Any]:
        return store.service_jwks()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
