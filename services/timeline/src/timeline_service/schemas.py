from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, Field

from pipedesk_common.events.timeline import ItemKind, Link


class TimelineRecordType(StrEnum):
    """Records whose timelines this service serves."""

    LEAD = "lead"
    DEAL = "deal"
    CONTACT = "contact"
    COMPANY = "company"


class HiddenReason(StrEnum):
    PRIVATE = "private"
    MAILBOX_SUBJECT_ONLY = "mailbox_subject_only"
    MAILBOX_METADATA_ONLY = "mailbox_metadata_only"


class Hidden(BaseModel):
    reason: HiddenReason = Field(description="Why some of the item's content is withheld")
    fields: list[str] = Field(description="The fields withheld (null or empty in this answer)")


class ItemSource(BaseModel):
    service: str
    google_id: str | None
    url: str | None = Field(description="Opens the source object in Google")


class SeriesPublic(BaseModel):
    rule: list[str] = Field(description="RFC 5545 lines: one `RRULE`, any `EXDATE`/`RDATE`")
    time_zone: str | None = Field(description="The zone the rule counts wall-clock time in")
    all_day: bool
    next_occurrence: datetime | None = Field(
        description="The first occurrence starting at or after the current minute (all-day: "
        "today, UTC, or later); null once the series is over or cancelled. Occurrences "
        "changed or cancelled on their own are items of their own"
    )


class TimelineItemPublic(BaseModel):
    id: UUID
    kind: ItemKind
    occurred_at: datetime
    title: str
    summary: str | None
    participants: list[str]
    status: str | None = Field(description="The source's status, e.g. `cancelled`, `deleted`")
    actor_id: str | None
    source: ItemSource
    links: list[Link] = Field(description="The records it is attached to that the viewer may see")
    series: SeriesPublic | None = Field(
        None,
        description="A recurring meeting: the item is the whole series (`occurred_at` its "
        "first occurrence)",
    )
    hidden: Hidden | None = Field(description="Null when the viewer sees the whole item")


class StreamTicketPublic(BaseModel):
    ticket: str
    expires_at: datetime
    stream_url: str = Field(description="Where to open the event stream with this ticket")
