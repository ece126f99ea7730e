"""What every Google-facing service is configured with, on top of ``BaseServiceSettings``; and
the push channel settings of those Google notifies (Calendar, Drive)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr, model_validator

from pipedesk_common.settings import BaseServiceSettings, Environment


class GoogleServiceSettings(BaseServiceSettings):
    crm_url: str | None = Field(None, validation_alias=AliasChoices("CRM_URL", "crm_url"))
    sync_lease_seconds: int = Field(
        300, ge=10, description="How long a sync holds its key before another process may take it"
    )
    jobs_enabled: bool = Field(True, description="Run the periodic jobs in this process")
    health_metrics_seconds: float = Field(
        30, gt=0, le=3600, description="How often the sync health gauges are counted again"
    )

    @property
    def crm_base_url(self) -> str:
        return self.crm_url or self.url_of("crm")


class PushServiceSettings(GoogleServiceSettings):
    """A Google service Google notifies of changes through push channels."""

    webhook_path: ClassVar[str]
    # The development signing secret, refused in production.
    dev_channel_secret: ClassVar[str]

    channel_secret: SecretStr | None = Field(
        None,
        min_length=32,
        description="Signs push channel tokens (HMAC of the channel id); required in production",
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
    renew_interval_seconds: int = Field(300, ge=10)

    @model_validator(mode="after")
    def _refuse_development_push_settings(self) -> PushServiceSettings:
        if self.environment is not Environment.PRODUCTION:
            return self
        if self.channel_secret is None:
            raise ValueError(f"{self.env_prefix()}CHANNEL_SECRET is required in production")
        if self.channel_secret.get_secret_value() == self.dev_channel_secret:
            raise ValueError(f"{self.env_prefix()}CHANNEL_SECRET is the development value")
        if self.webhook_url is None:
            raise ValueError(f"{self.env_prefix()}WEBHOOK_URL must name the public webhook address")
        if not self.webhook_url.startswith("https://"):
            # Google delivers push notifications only to https addresses with a valid certificate.
            raise ValueError(
                f"{self.env_prefix()}WEBHOOK_URL must be an https:// address: Google posts "
                "notifications only to https with a valid certificate"
            )
        return self

    @property
    def webhook_address(self) -> str:
        return self.webhook_url or self.url_of("gateway") + self.webhook_path

    @property
    def channel_secrets(self) -> list[bytes]:
        """The secret new channels are signed with, then any still accepted."""
        current = self.channel_secret.get_secret_value() if self.channel_secret else None
        secrets = [(current or self.dev_channel_secret).encode()]
        if self.channel_previous_secret is not None:
            secrets.append(self.channel_previous_secret.get_secret_value().encode())
        return secrets
