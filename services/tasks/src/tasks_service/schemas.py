"""API shapes. Writes accept the names the frontend uses (``title``|``name``,
``notes``|``description``, ``due``|``due_date``) and a due date given as a date or a date-time."""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from pipedesk_common.aliases import documented_aliases, resolve_aliases
from pipedesk_common.errors import invalid
from pipedesk_common.mirror.disconnect import KEEP_METADATA, OnDisconnect
from pipedesk_common.mirror.links import LinkInput, LinkPublic

# Canonical name → the other names the frontend may use for it (at most one per payload).
TASK_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "title": ("name",),
    "notes": ("description",),
    "due": ("due_date",),
}
LIST_ALIASES: Final[dict[str, tuple[str, ...]]] = {"title": ("name",)}
DUE_DESCRIPTION: Final = (
    "The due date: a date (`2030-03-04`) or an RFC 3339 date-time with an offset "
    "(`2030-03-04T17:00:00+01:00`, whose own calendar date is kept: Google Tasks stores no time "
    "of day). `null` clears it."
)
TaskStatus = Literal["needsAction", "completed"]


def parse_due(value: Any) -> date | None:
    """A date from a date or an offset date-time (in the offset's own calendar)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid("due", "a date (YYYY-MM-DD) or an RFC 3339 date-time")
    text = value.strip()
    if len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise invalid("due", "not a date (YYYY-MM-DD)") from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise invalid("due", "not a date (YYYY-MM-DD) or an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise invalid("due", "a date-time needs an offset (`Z` or `+01:00`)", "missing_zone")
    return moment.date()


# What ``parse_due`` takes, as OpenAPI says it: a date, or an RFC 3339 date-time (its offset
# included).
DueInput = Annotated[
    str,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date"},
                {"type": "string", "format": "date-time"},
            ]
        }
    ),
]


class _TaskWrite(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=documented_aliases(TASK_ALIASES))

    title: str | None = Field(None, max_length=1024, description="The title.")
    notes: str | None = Field(None, max_length=8192, description="Notes.")
    due: DueInput | None = Field(None, max_length=64, description=DUE_DESCRIPTION)
    links: list[LinkInput] | None = Field(None, max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        return resolve_aliases(data, TASK_ALIASES)

    @model_validator(mode="after")
    def _valid_due(self) -> _TaskWrite:
        parse_due(self.due)
        return self

    def due_date(self) -> date | None:
        return parse_due(self.due)


def _title_not_empty(schema: dict[str, Any]) -> None:
    """A title sent is a non-empty string (never null), under one of its names."""
    title = schema["properties"]["title"]
    title.pop("anyOf", None)
    title.pop("default", None)
    title.update(type="string", minLength=1, maxLength=1024)
    documented_aliases(TASK_ALIASES)(schema)


def _title_required(schema: dict[str, Any]) -> None:
    """A new task's title is a non-empty string, under one of its names."""
    schema["required"] = ["title"]
    _title_not_empty(schema)


class TaskCreate(_TaskWrite):
    """A new task. ``title`` is required."""

    model_config = ConfigDict(json_schema_extra=_title_required)

    list_id: UUID | None = Field(
        None, description="One of the caller's task lists; default: their default list"
    )
    parent_id: UUID | None = Field(None, description="Makes it a subtask of this task")
    previous_id: UUID | None = Field(
        None, description="Places it right after this sibling; default: first"
    )
    assignee_id: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="A user of the caller's org: the task goes to their default Google Tasks "
        "list, created through their connection, recording who assigned it.",
    )
    status: TaskStatus | None = None


class TaskUpdate(_TaskWrite):
    """Fields to change; absent fields stay as they are. ``links`` replaces the links; a title
    sent may not be empty or null."""

    model_config = ConfigDict(json_schema_extra=_title_not_empty)

    status: TaskStatus | None = Field(
        None, description="`completed` completes the task, `needsAction` reopens it"
    )


class TaskMove(BaseModel):
    """Where to move a task within its list; both absent: first at the top level."""

    model_config = ConfigDict(extra="forbid")

    parent_id: UUID | None = Field(None, description="The new parent (a subtask); null: top level")
    previous_id: UUID | None = Field(None, description="The sibling to follow; null: first")


class TaskListWrite(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=documented_aliases(LIST_ALIASES))

    title: str = Field(min_length=1, max_length=1024, description="The list's title.")

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        return resolve_aliases(data, LIST_ALIASES)


class TaskListPublic(BaseModel):
    id: UUID
    google_id: str = Field(description="Google's id of the list")
    title: str
    is_default: bool
    polled_at: AwareDatetime | None = Field(description="When its poll last completed")
    created_at: AwareDatetime
    updated_at: AwareDatetime


class TaskPublic(BaseModel):
    id: UUID
    list_id: UUID
    google_id: str = Field(description="Google's id of the task")
    owner_id: str = Field(description="The user whose Google Tasks hold it (the assignee)")
    assigned_by: str | None
    parent_id: UUID | None = Field(description="The parent task (for a subtask)")
    position: str | None = Field(description="Google's sort key among its siblings")
    title: str
    notes: str | None
    status: TaskStatus
    due: dt.date | None
    completed_at: AwareDatetime | None
    hidden: bool = Field(
        description="Google's flag: set by clearing completed tasks, and on a task completed "
        "in Google's own apps"
    )
    deleted: bool
    web_link: str | None
    links: list[LinkPublic]
    version: int
    created_at: AwareDatetime
    updated_at: AwareDatetime


class TaskSettingsPublic(BaseModel):
    on_disconnect: OnDisconnect = Field(
        description="What the tasks mirrored from a user's Google Tasks become once they "
        "disconnect Google Tasks (or Google revokes their access): `keep_metadata` keeps them "
        "on timelines as last seen; `remove` removes them from PipeDesk and from every timeline "
        "no other copy holds them on"
    )
    updated_at: datetime | None


class TaskSettingsWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_disconnect: OnDisconnect = KEEP_METADATA
