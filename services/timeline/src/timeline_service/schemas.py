from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel

from pipedesk_common.events.timeline import ItemKind, Link


class TimelineRecordType(StrEnum):
    """Records whose timelines this service serves."""

    LEAD = "lead"


class ItemSource(BaseModel):
    service: str
    google_id: str | None
    url: str | None


class TimelineItemPublic(BaseModel):
    id: UUID
    kind: ItemKind
    occurred_at: datetime
    title: str
    summary: str | None
    participants: list[str]
    status: str | None
    actor_id: str | None
    source: ItemSource
    links: list[Link]
