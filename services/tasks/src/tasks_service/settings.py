from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pipedesk_common.mirror.settings import GoogleServiceSettings


class TasksSettings(GoogleServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TASKS_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "tasks"

    poll_interval_seconds: int = Field(
        300,
        ge=30,
        description="How often every user's task lists are polled (each poll costs one "
        "tasklists.list plus one tasks.list per list and page)",
    )
    poll_overlap_seconds: int = Field(
        5, ge=0, le=300, description="Polls re-read this much before the last change seen"
    )
    poll_page_size: int = Field(100, ge=1, le=100)
    create_lease_seconds: int = Field(
        120, ge=10, description="How long a create holds its pending task before a retry may"
    )
    pending_retention_hours: int = Field(
        24, ge=1, description="A create that never reached Google is forgotten after this"
    )
