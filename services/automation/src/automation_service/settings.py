from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pipedesk_common.settings import BaseServiceSettings


class AutomationSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTOMATION_", extra="ignore", populate_by_name=True
    )

    service_name: ClassVar[str] = "automation"

    max_attachments_per_job: int = Field(
        50, ge=1, le=500, description="The most attachments one attachments-to-drive job saves"
    )
    transfer_timeout_seconds: float = Field(
        120,
        gt=0,
        le=3600,
        description="How long one attachment's transfer (Gmail to Drive) may take before it is "
        "retried",
    )
    app_url: str = Field(
        "http://127.0.0.1:8000",
        pattern=r"^https?://[^\s]+$",
        description="Where users open PipeDesk: a notification links to `<app_url>/<type>s/<id>`",
    )
    jobs_enabled: bool = Field(
        True,
        description="Run the periodic jobs (the SLA worker, the SLA sync) in this process; "
        "the database lease lets one process run each turn",
    )
    sla_scan_seconds: int = Field(
        60, ge=5, le=3600, description="How often the SLA worker looks for due leads"
    )
    sla_sync_seconds: int = Field(
        30,
        ge=5,
        le=3600,
        description="How often due times recomputed by a policy or calendar change are written "
        "to CRM",
    )

    def record_url(self, record_type: str, record_id: str) -> str:
        return f"{self.app_url.rstrip('/')}/{record_type}s/{record_id}"
