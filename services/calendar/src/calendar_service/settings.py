from typing import ClassVar, Final

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pipedesk_common.mirror.settings import PushServiceSettings

# The development value, refused in production.
DEV_CHANNEL_SECRET: Final = "dev-only-calendar-channel-secret-0123456789abcdef"  # noqa: S105
WEBHOOK_PATH: Final = "/webhooks/google/calendar"


class CalendarSettings(PushServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CALENDAR_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "calendar"
    webhook_path: ClassVar[str] = WEBHOOK_PATH
    dev_channel_secret: ClassVar[str] = DEV_CHANNEL_SECRET

    reconcile_interval_seconds: int = Field(900, ge=10)
    sync_page_size: int = Field(250, ge=1, le=2500)
    retention_interval_seconds: int = Field(
        3600,
        ge=60,
        description="How often the org's event retention (`retention_days`) is applied",
    )
