from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pipedesk_common.settings import BaseServiceSettings


class CrmSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "crm"

    lifecycle_services: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "calendar",
            "tasks",
            "drive",
            "gmail",
            "timeline",
            "automation",
            "accounts",
        ],
        validation_alias=AliasChoices("CRM_LIFECYCLE_SERVICES", "lifecycle_services"),
        description="The services whose part of the lifecycle contract a deactivation or a "
        "deletion runs, in order (the accounts service always last), each reached at its "
        "<NAME>_URL; empty, a deactivation only refuses the user and hands their records over",
    )
    lifecycle_call_timeout_seconds: float = Field(
        120.0,
        gt=0,
        le=3600,
        validation_alias=AliasChoices(
            "CRM_LIFECYCLE_CALL_TIMEOUT_SECONDS", "lifecycle_call_timeout_seconds"
        ),
        description="How long one service's part of a deactivation may take before it counts "
        "as failed (run again by the next request)",
    )
    jobs_enabled: bool = Field(
        True,
        description="Run the periodic jobs (resuming unfinished lifecycle jobs) in this "
        "process; the database lease lets one process run each turn",
    )
    lifecycle_resume_seconds: float = Field(
        60.0,
        ge=1,
        le=86400,
        validation_alias=AliasChoices("CRM_LIFECYCLE_RESUME_SECONDS", "lifecycle_resume_seconds"),
        description="How often unfinished lifecycle jobs that no live process runs (it died, "
        "or a part failed) are resumed without a request",
    )
    lifecycle_lease_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        validation_alias=AliasChoices("CRM_LIFECYCLE_LEASE_SECONDS", "lifecycle_lease_seconds"),
        description="How long a lifecycle job stays held by the process running its parts "
        "without a renewal (it renews a third of the way through, and before each part); "
        "past it, the job of a process that died is resumed by another",
    )

    @field_validator("lifecycle_services", mode="before")
    @classmethod
    def _services_comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("lifecycle_services")
    @classmethod
    def _service_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.isidentifier() or name == "crm":
                raise ValueError(f"{name!r} is not the name of another service")
        return value
