"""Events the tasks service publishes (routing keys ``tasks.*``).

One event per change of a mirrored Google task, whether made through PipeDesk's API or found by
the poll (completed on a phone): ``created`` when PipeDesk first sees it, ``completed`` when it
becomes completed, ``deleted`` when it is deleted in Google, ``updated`` on any other change
(reopened, renamed, moved, hidden by "clear completed"…).
"""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, Field

from pipedesk_common.events.envelope import VersionedData, contract
from pipedesk_common.events.sync import SyncStateChanged
from pipedesk_common.events.timeline import Link, TimelineProjection


class TaskSnapshot(VersionedData):
    """A mirrored task after the change (``id`` and ``version`` identify it)."""

    org_id: str
    owner_id: str = Field(description="The assignee: the PipeDesk user whose Google Tasks hold it")
    assigned_by: str | None = Field(description="Who assigned it to the owner, if someone else")
    tasklist_id: str = Field(description="Google's id of the task list")
    google_id: str = Field(description="Google's id of the task")
    parent_google_id: str | None = Field(description="Google's id of the parent (a subtask)")
    title: str
    notes: str | None
    status: str = Field(description="needsAction or completed")
    due: dt.date | None = Field(description="The due date (Google Tasks keeps no time of day)")
    completed_at: AwareDatetime | None
    hidden: bool = Field(description="Hidden by clearing completed tasks")
    deleted: bool
    web_link: str | None
    links: list[Link] = Field(description="The CRM records the task belongs to")
    timeline: TimelineProjection


@contract("tasks", "task", "created")
class TaskCreated(TaskSnapshot):
    """A task was created through PipeDesk, or found in a user's Google Tasks by the poll."""


@contract("tasks", "task", "updated")
class TaskUpdated(TaskSnapshot):
    """A mirrored task changed (in PipeDesk or in Google), other than completed or deleted."""


@contract("tasks", "task", "completed")
class TaskCompleted(TaskSnapshot):
    """A mirrored task became completed."""


@contract("tasks", "task", "deleted")
class TaskDeleted(TaskSnapshot):
    """A mirrored task was deleted (with its list, or on its own); or it left PipeDesk when its
    owner disconnected Google Tasks under the org's ``remove`` rule, its timeline copy then
    ``removed``."""


@contract("tasks", "sync", "state_changed")
class TasksSyncStateChanged(SyncStateChanged):
    """The tasks service's sync of a user's Google Tasks changed state."""
