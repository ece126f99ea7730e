"""Events the automation service publishes (routing keys ``automation.*``).

``automation.attachment.requested`` is the automation service's own work item: one attachment
of a message to save into a record's folder, taken off its queue one at a time (retried with
backoff, dead-lettered with its reason).
"""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from pipedesk_common.events.envelope import EventData, contract


@contract("automation", "attachment", "requested")
class AttachmentRequested(EventData):
    """One attachment of a job to save into the job's record's ``Email attachments`` folder."""

    job_id: UUID = Field(description="The job the attachment belongs to")
    org_id: str
    attachment_id: str = Field(description="The attachment's part id, as the message lists it")
