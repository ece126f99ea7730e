"""The accounts service process: ``python -m accounts_service``."""

from fastapi import FastAPI

from accounts_service.api import internal, router
from accounts_service.models import outbox
from accounts_service.service import DelegatedTokens
from accounts_service.settings import AccountsSettings
from accounts_service.vault import Vault
from pipedesk_common.app import create_app
from pipedesk_common.clock import Clock


def build_app(settings: AccountsSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or AccountsSettings()
    app = create_app(
        settings,
        title="PipeDesk accounts",
        description="Google connections, an encrypted token vault, and credentials for every "
        "Google call.",
        routers=[router, internal],
        clock=clock,
        outbox=outbox,
    )
    app.state.vault = Vault.from_spec(
        settings.vault_keys.get_secret_value(), settings.vault_active_key
    )
    app.state.delegated_tokens = DelegatedTokens()
    return app
