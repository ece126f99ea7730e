"""Events the gmail service publishes (routing keys ``gmail.*``).

One event per change of a mirrored message of a connected mailbox: ``created`` when the sync
first reads it, ``updated`` when its labels (or the mailbox's sharing level) change,
``deleted`` when it leaves the mailbox (or the mailbox is disconnected under the org's
"remove" rule). Each carries the message's timeline projection: one item per ``Message-ID``
however many mailboxes hold it, at the mailbox's sharing level.
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from pipedesk_common.events.envelope import VersionedData, contract
from pipedesk_common.events.sync import SyncStateChanged
from pipedesk_common.events.timeline import TimelineProjection


class GmailMessageSnapshot(VersionedData):
    """A mirrored message after the change (``id`` and ``version`` identify it)."""

    org_id: str
    owner_id: str = Field(description="The PipeDesk user whose mailbox holds the message")
    google_id: str = Field(description="Gmail's id of the message in that mailbox")
    thread_id: str = Field(description="Gmail's id of its thread in that mailbox")
    message_id: str = Field(description="The RFC 5322 Message-ID (or a digest of the headers)")
    sharing: str = Field(description="The mailbox's sharing level: metadata, subject or full")
    deleted: bool
    internal_date: AwareDatetime
    label_ids: list[str]
    sender: str | None
    recipients: list[str] = Field(description="To, Cc and Bcc, lower case")
    matched: bool = Field(
        description="Offered to matching (not bulk, not internal-only, not blocklisted)"
    )
    timeline: TimelineProjection


@contract("gmail", "message", "created")
class GmailMessageCreated(GmailMessageSnapshot):
    """A message was first read from a connected mailbox."""


@contract("gmail", "message", "updated")
class GmailMessageUpdated(GmailMessageSnapshot):
    """A mirrored message changed: its labels, or its mailbox's sharing level."""


@contract("gmail", "message", "deleted")
class GmailMessageDeleted(GmailMessageSnapshot):
    """A message left its mailbox (or its mailbox was disconnected and the org removes mail)."""


@contract("gmail", "sync", "state_changed")
class GmailSyncStateChanged(SyncStateChanged):
    """The gmail service's sync of a user's mailbox changed state."""
