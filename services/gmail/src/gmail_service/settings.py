from typing import ClassVar

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from pipedesk_common.mirror.settings import GoogleServiceSettings
from pipedesk_common.settings import Environment
from pipedesk_common.uploads import DEFAULT_GMAIL_MAX_MESSAGE_BYTES, DEFAULT_GMAIL_MAX_SEND_BYTES

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


class GmailSettings(GoogleServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GMAIL_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "gmail"
    webhook_path: ClassVar[str] = "/webhooks/google/gmail"

    window_days: int = Field(
        90, ge=1, le=3650, description="How far back a mailbox's initial (and full) sync reaches"
    )
    quota_units_per_second: float = Field(
        250,
        gt=0,
        le=250,
        description="The Gmail quota units a mailbox's sync spends per second at most "
        "(Google allows 250 per user)",
    )
    quota_burst_units: int = Field(
        250, ge=10, description="The units a sync may spend at once before it is paced"
    )
    page_size: int = Field(100, ge=1, le=500, description="Messages or history records per page")
    catchup_interval_seconds: int = Field(
        600, ge=30, description="How often every mailbox's history is read, for what push missed"
    )
    retention_interval_seconds: int = Field(
        3600,
        ge=60,
        description="How often the org's mail retention (`retention_days`) is applied",
    )
    pubsub_topic: str | None = Field(
        None,
        pattern=r"^projects/[^/]+/topics/[^/]+$",
        description="The Pub/Sub topic Gmail publishes mailbox changes to (unset: no push; "
        "the periodic catch-up alone)",
    )
    push_audience: str | None = Field(
        None, description="The OIDC audience of the push subscription (default: the webhook URL)"
    )
    push_service_account: str | None = Field(
        None, description="The service account email the push subscription authenticates as"
    )
    push_certs_url: str = Field(
        GOOGLE_CERTS_URL, description="Where the keys signing push tokens are published"
    )
    webhook_url: str | None = Field(
        None, description="The public address of the push endpoint (default: the gateway's)"
    )
    watch_renew_interval_seconds: int = Field(
        24 * 3600,
        ge=300,
        le=6 * 24 * 3600,
        description="A mailbox's watch is renewed this long after it was made (Gmail's last "
        "7 days; Google asks for a renewal every day)",
    )

    max_attachment_bytes: int = Field(
        25 * 1024 * 1024,
        ge=1,
        description="The largest attachment downloaded through PipeDesk (Gmail's own limit on a "
        "message is 25 MB); a larger one answers 413",
    )
    max_message_bytes: int = Field(
        DEFAULT_GMAIL_MAX_MESSAGE_BYTES,
        ge=1024,
        le=DEFAULT_GMAIL_MAX_MESSAGE_BYTES,
        description="The largest message sent, encoded (Gmail sends at most 25 MB): larger is "
        "413 before Google is asked",
    )
    max_send_bytes: int = Field(
        DEFAULT_GMAIL_MAX_SEND_BYTES,
        ge=1024,
        validation_alias=AliasChoices("GMAIL_MAX_SEND_BYTES", "max_send_bytes"),
        description="The largest request body of the send and reply routes (the same setting "
        "as the gateway's); every other route keeps MAX_BODY_BYTES",
    )

    @model_validator(mode="after")
    def _push_is_complete(self) -> "GmailSettings":
        if self.pubsub_topic is not None and self.push_service_account is None:
            raise ValueError("GMAIL_PUSH_SERVICE_ACCOUNT is required with GMAIL_PUBSUB_TOPIC")
        if self.environment is not Environment.PRODUCTION or self.pubsub_topic is None:
            return self
        if self.push_certs_url != GOOGLE_CERTS_URL:
            raise ValueError("GMAIL_PUSH_CERTS_URL must be Google's in production")
        if self.webhook_url is None or not self.webhook_url.startswith("https://"):
            # Pub/Sub pushes only to https endpoints.
            raise ValueError("GMAIL_WEBHOOK_URL must be the public https:// push endpoint")
        return self

    @property
    def webhook_address(self) -> str:
        return self.webhook_url or self.url_of("gateway") + self.webhook_path

    @property
    def audience(self) -> str:
        return self.push_audience or self.webhook_address
