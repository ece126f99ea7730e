"""Events the gmail service publishes (routing keys ``gmail.*``).

One event per change of a mirrored message of a connected mailbox: ``created`` when the sync
first reads it, ``updated`` when its labels (or the mailbox's sharing level) change,
``deleted`` when it leaves the mailbox (or the mailbox is disconnected under the org's
"remove" rule). Each carries the message's timeline projection: one item per ``Message-ID``
however many mailboxes hold it, at the mailbox's sharing level. A message linked to a record by
hand (or unlinked) is ``updated`` with its links, and the change is audited
(``gmail.audit.recorded``, stored by CRM in the org's audit log).
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from pipedesk_common.events.envelope import EventData, VersionedData, contract
from pipedesk_common.events.sync import SyncStateChanged
from pipedesk_common.events.timeline import Link, TimelineProjection


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


@contract("gmail", "audit", "recorded")
class GmailAuditRecorded(EventData):
    """Mail linked to a record by hand, or unlinked from it: who did it, to which record, and
    which messages (for the org's one audit log; CRM stores it)."""

    id: str = Field(description="The audit entry's id (the same in every redelivery)")
    org_id: str
    record: Link
    action: str = Field(description="mail_linked or mail_unlinked")
    actor_id: str = Field(description="The user who linked or unlinked it")
    thread_id: str | None = Field(
        None, description="Gmail's id of the thread linked or unlinked, in the actor's mailbox"
    )
    message_ids: list[str] = Field(
        description="The `Message-ID`s of the messages linked or unlinked"
    )
    occurred_at: AwareDatetime
