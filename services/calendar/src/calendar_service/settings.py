from typing import ClassVar, Final

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from pipedesk_common.settings import BaseServiceSettings, Environment

# The development value, refused in production.
DEV_CHANNEL_SECRET: Final = "dev-only-calendar-channel-secret-0123456789abcdef"  # noqa: S105
WEBHOOK_PATH: Final = "/webhooks/google/calendar"


class CalendarSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CALENDAR_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "calendar"

    crm_url: str | None = Field(None, validation_alias=AliasChoices("CRM_URL", "crm_url"))
    channel_secret: SecretStr = Field(
        SecretStr(DEV_CHANNEL_SECRET),
        min_length=32,
        description="Signs push channel tokens (HMAC of the channel id)",
    )
    channel_previous_secret: SecretStr | None = Field(
        None, description="Still accepted on notifications while channels signed with it live"
    )
    webhook_url: str | None = Field(
        None,
        description="The public address Google posts notifications to (default: the gateway's)",
    )
    channel_ttl_seconds: int = Field(7 * 24 * 3600, ge=300, le=30 * 24 * 3600)
    channel_renew_before_seconds: int = Field(24 * 3600, ge=60)
    reconcile_interval_seconds: int = Field(900, ge=10)
    renew_interval_seconds: int = Field(300, ge=10)
    sync_lease_seconds: int = Field(300, ge=10)
    sync_page_size: int = Field(250, ge=1, le=2500)
    jobs_enabled: bool = Field(True, description="Run the periodic renewal and reconciliation")

    @model_validator(mode="after")
    def _refuse_dev_channel_secret(self) -> "CalendarSettings":
        production = self.environment is Environment.PRODUCTION
        if production and self.channel_secret.get_secret_value() == DEV_CHANNEL_SECRET:
            raise ValueError("CALENDAR_CHANNEL_SECRET is the development value")
        if production and self.webhook_url is None:
            raise ValueError("CALENDAR_WEBHOOK_URL must name the public webhook address")
        return self

    @property
    def crm_base_url(self) -> str:
        return self.crm_url or self.url_of("crm")

    @property
    def webhook_address(self) -> str:
        return self.webhook_url or self.url_of("gateway") + WEBHOOK_PATH

    @property
    def channel_secrets(self) -> list[bytes]:
        secrets = [self.channel_secret.get_secret_value().encode()]
        if self.channel_previous_secret is not None:
            secrets.append(self.channel_previous_secret.get_secret_value().encode())
        return secrets
