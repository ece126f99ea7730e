"""The accounts service process: ``python -m accounts_service``."""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from accounts_service.api import internal, lifecycle, router
from accounts_service.health import QUEUE, follow_sync_health
from accounts_service.health_api import health
from accounts_service.models import inbox, outbox
from accounts_service.service import DelegatedTokens
from accounts_service.settings import AccountsSettings
from accounts_service.vault import Vault, VaultError
from pipedesk_common.app import create_app
from pipedesk_common.clock import Clock
from pipedesk_common.consumer import Consumer
from pipedesk_common.errors import problem_response

log = logging.getLogger(__name__)


def build_app(settings: AccountsSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or AccountsSettings()
    sync_health = Consumer(QUEUE, inbox)
    follow_sync_health(sync_health)
    app = create_app(
        settings,
        title="PipeDesk accounts",
        description="Google connections, an encrypted token vault, credentials for every Google "
        "call, and the sync health of every Google product.",
        routers=[router, health, internal, lifecycle],
        clock=clock,
        outbox=outbox,
        consumers=[sync_health],
    )
    app.state.vault = Vault.from_spec(
        settings.vault_keys.get_secret_value(), settings.vault_active_key
    )
    app.state.delegated_tokens = DelegatedTokens()
    app.add_exception_handler(VaultError, _vault_error)
    return app


async def _vault_error(request: Request, exc: Exception) -> JSONResponse:
    """A stored secret that does not open (a missing key, a tampered row) is an operator's
    problem: logged, and answered without anything about the secret."""
    log.error("a sealed secret failed to open", extra={"error": str(exc), "path": request.url.path})
    return problem_response(
        503,
        "vault-unavailable",
        "Stored Google credentials cannot be read",
        "the credentials vault could not open a stored secret; operators have been told",
        instance=request.url.path,
    )
