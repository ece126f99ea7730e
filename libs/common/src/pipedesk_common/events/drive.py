"""Events the drive service publishes (routing keys ``drive.*``).

- ``drive.audit.recorded``: one Drive action taken through PipeDesk's API (an upload, a rename, a
  share…), with its actor, record, file and before/after, for the org's one audit log (CRM keeps
  it); it carries no timeline projection (the file events below do).
- ``drive.file.<created|updated|trashed|restored|deleted|shared>``: a file in a record's folder as
  Drive's change log shows it, whoever changed it (in PipeDesk or in Drive itself), with its
  timeline projection.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field

from pipedesk_common.events.envelope import EventData, VersionedData, contract
from pipedesk_common.events.sync import SyncStateChanged
from pipedesk_common.events.timeline import Link, TimelineProjection


@contract("drive", "sync", "state_changed")
class DriveSyncStateChanged(SyncStateChanged):
    """The drive service's sync of the org's Drive account changed state (its record folders
    could not be brought in line with CRM, or could again)."""


@contract("drive", "audit", "recorded")
class DriveAuditRecorded(EventData):
    """One Drive action taken through PipeDesk: who did what to which record's file or folder,
    from what to what."""

    id: str = Field(description="The audit entry's id (the same in every redelivery)")
    org_id: str
    record: Link
    action: str = Field(
        description="file_uploaded, file_renamed, file_moved, file_trashed, file_restored, "
        "file_deleted, share_added, share_changed, share_removed, folder_repaired"
    )
    actor_id: str = Field(description="A user id, or `svc:<service>` for a service's action")
    file_id: str | None = Field(None, description="Google's id of the file or folder acted on")
    file_name: str | None = None
    changes: dict[str, tuple[Any, Any]] = Field(
        default_factory=dict, description="field → [before, after]"
    )
    occurred_at: AwareDatetime
    audit_id: str | None = Field(
        None,
        description="For a share changed because CRM access changed: the CRM audit entry of "
        "that change (its `audit_id`), so both read as one change",
    )


class DriveFileSnapshot(VersionedData):
    """A file in a record's folder after a change (``id``: Google's file id; ``version``:
    Drive's own, increasing with each change)."""

    org_id: str
    record: Link
    name: str
    mime_type: str
    size: int | None
    web_view_link: str | None
    trashed: bool
    modified_by: str | None = Field(description="Email of who changed it last (Drive's view)")
    links: list[Link]
    timeline: TimelineProjection


@contract("drive", "file", "created")
class DriveFileCreated(DriveFileSnapshot):
    """A file appeared in a record's folder (uploaded through PipeDesk or added in Drive)."""


@contract("drive", "file", "updated")
class DriveFileUpdated(DriveFileSnapshot):
    """A file of a record's folder changed: its name, its content or its place."""


@contract("drive", "file", "trashed")
class DriveFileTrashed(DriveFileSnapshot):
    """A file of a record's folder was moved to the trash."""


@contract("drive", "file", "restored")
class DriveFileRestored(DriveFileSnapshot):
    """A file of a record's folder came back from the trash."""


@contract("drive", "file", "deleted")
class DriveFileDeleted(DriveFileSnapshot):
    """A file of a record's folder is gone for good (or left the record's folder); or it left
    PipeDesk when the account holding the org's My Drive root disconnected under the org's
    ``remove`` rule, its timeline copy then ``removed``."""


@contract("drive", "file", "shared")
class DriveFileShared(DriveFileSnapshot):
    """Who a file of a record's folder is shared with changed."""
