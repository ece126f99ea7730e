"""Events the automation service publishes (routing keys ``automation.*``).

``automation.attachment.requested`` (one attachment of a message to save into a record's folder)
and ``automation.notification.requested`` (a notification to send) are the service's own work
items, each taken off its own queue (retried with backoff, dead-lettered with its reason).
``automation.notification.sent`` carries a sent notification's timeline projection.
``automation.sla.warning`` and ``automation.sla.breached``: a lead's SLA due time is near, or
passed without a response; each is raised once per due time and is a timeline item of the lead.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import AwareDatetime, Field

from pipedesk_common.events.envelope import EventData, contract
from pipedesk_common.events.timeline import Link, TimelineProjection


@contract("automation", "attachment", "requested")
class AttachmentRequested(EventData):
    """One attachment of a job to save into the job's record's ``Email attachments`` folder."""

    job_id: UUID = Field(description="The job the attachment belongs to")
    org_id: str
    attachment_id: str = Field(description="The attachment's part id, as the message lists it")


@contract("automation", "notification", "requested")
class NotificationRequested(EventData):
    """A notification recorded for sending (the automation service's own work item)."""

    notification_id: UUID = Field(description="The notification: the id of the event it is for")
    org_id: str


@contract("automation", "notification", "sent")
class NotificationSent(EventData):
    """A notification email was sent; on the record's timeline it is one item with the synced
    copies of the email (their ``Message-ID`` is its ``timeline.identity``)."""

    notification_id: UUID
    org_id: str
    kind: str = Field(description="What it tells: owner_changed")
    record: Link
    sender: str = Field(description="The address it was sent from")
    recipient_ids: list[str]
    message_id: str = Field(description="The email's RFC 5322 Message-ID")
    timeline: TimelineProjection


class SlaAlert(EventData):
    """A lead's SLA due time, near or passed, as the worker that found it raised it."""

    alert_id: UUID = Field(description="The alert: one per lead, kind and due time")
    org_id: str
    record: Link
    stage: str = Field(description="first_response or next_touch: what the lead is waiting for")
    due_at: AwareDatetime
    priority: str
    owner_id: str
    team_id: str | None
    recipient_ids: list[str] = Field(description="The users told: the owner, the team's managers")
    timeline: TimelineProjection


@contract("automation", "sla", "warning")
class SlaWarning(SlaAlert):
    """A lead's SLA due time is near (within its policy's warning time)."""


@contract("automation", "sla", "breached")
class SlaBreached(SlaAlert):
    """A lead's SLA due time passed without the response it waited for."""
