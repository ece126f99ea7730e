from typing import ClassVar, Final

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from pipedesk_common.settings import BaseServiceSettings, Environment, port_for

GOOGLE_AUTH_URL: Final = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL: Final = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
GOOGLE_REVOKE_URL: Final = "https://oauth2.googleapis.com/revoke"
GOOGLE_USERINFO_URL: Final = "https://www.googleapis.com/oauth2/v2/userinfo"
CALLBACK_PATH: Final = "/api/accounts/google/callback"
CONSOLE_PATH: Final = "/app/"

# Development values, refused in production: the emulator's dev client and a fixed vault key.
DEV_CLIENT_ID: Final = "pipedesk-dev-client"
DEV_CLIENT_SECRET: Final = "pipedesk-dev-secret"  # noqa: S105
DEV_VAULT_KEYS: Final = "dev:ZGV2LW9ubHktdmF1bHQta2V5LW5vdC1mb3ItcHJvZCE="


class AccountsSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACCOUNTS_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "accounts"

    google_client_id: str = Field(DEV_CLIENT_ID, min_length=1)
    google_client_secret: SecretStr = SecretStr(DEV_CLIENT_SECRET)
    google_redirect_uri: str | None = Field(
        None,
        description="The callback URL registered with Google (default: the gateway's "
        + CALLBACK_PATH
        + ")",
    )
    google_auth_url: str | None = Field(
        None,
        description="The consent page the browser is sent to (default: Google's, or the "
        "emulator's under GOOGLE_ROOT_URL); for a browser that reaches the emulator at another "
        "address than the services do, as with compose",
    )
    frontend_url: str | None = Field(
        None,
        description="Where the browser is sent after the callback, with the outcome in the query "
        "(default: the gateway's console, " + CONSOLE_PATH + ")",
    )
    vault_keys: SecretStr = Field(
        SecretStr(DEV_VAULT_KEYS),
        description="Comma-separated key_id:base64 AES-256 keys; every key ever used must stay "
        "until `rotate_keys` has re-encrypted its rows",
    )
    vault_active_key: str = Field("dev", description="The key id new ciphertexts are sealed with")
    state_ttl_seconds: int = Field(600, ge=60, le=3600)
    refresh_margin_seconds: int = Field(
        600, ge=360, le=3000, description="A stored access token this close to expiry is renewed"
    )

    disconnect_call_timeout_seconds: float = Field(
        10,
        gt=0,
        le=60,
        description="How long a disconnect waits for each product to stop the user's channels "
        "and watches at Google before it revokes the grant anyway",
    )

    @model_validator(mode="after")
    def _refuse_dev_google_secrets_in_production(self) -> "AccountsSettings":
        if self.environment is not Environment.PRODUCTION:
            return self
        problems = []
        if self.google_client_secret.get_secret_value() == DEV_CLIENT_SECRET:
            problems.append("ACCOUNTS_GOOGLE_CLIENT_SECRET is the development value")
        if self.vault_keys.get_secret_value() == DEV_VAULT_KEYS:
            problems.append("ACCOUNTS_VAULT_KEYS holds the development key")
        if self.google_redirect_uri is None:
            problems.append("ACCOUNTS_GOOGLE_REDIRECT_URI must be the public callback URL")
        if self.frontend_url is None:
            problems.append("ACCOUNTS_FRONTEND_URL must be the frontend's page for the outcome")
        if problems:
            raise ValueError("refusing development secrets in production: " + "; ".join(problems))
        if self.google_auth_url is not None and not self.google_allow_non_google_root:
            raise ValueError(
                f"ACCOUNTS_GOOGLE_AUTH_URL ({self.google_auth_url}) would send users' consent to "
                "a page that is not Google's; unset it in production, or set "
                "GOOGLE_ALLOW_NON_GOOGLE_ROOT=true if that page is yours on purpose"
            )
        return self

    @property
    def _gateway(self) -> str:
        return f"http://127.0.0.1:{port_for('gateway', self.port_base)}"

    @property
    def redirect_uri(self) -> str:
        return self.google_redirect_uri or self._gateway + CALLBACK_PATH

    @property
    def return_url(self) -> str:
        """Where the callback sends the browser: the frontend, or in development the console."""
        return self.frontend_url or self._gateway + CONSOLE_PATH

    def _google(self, path: str, default: str) -> str:
        return self.google_root_url.rstrip("/") + path if self.google_root_url else default

    @property
    def auth_url(self) -> str:
        return self.google_auth_url or self._google("/o/oauth2/v2/auth", GOOGLE_AUTH_URL)

    @property
    def token_url(self) -> str:
        return self._google("/token", GOOGLE_TOKEN_URL)

    @property
    def revoke_url(self) -> str:
        return self._google("/revoke", GOOGLE_REVOKE_URL)

    @property
    def userinfo_url(self) -> str:
        return self._google("/oauth2/v2/userinfo", GOOGLE_USERINFO_URL)
