"""The automation service's part of the user lifecycle (``pipedesk_common.lifecycle``).

Deactivation: the rules the user acted for (as their acting admin) are paused, with the reason;
an admin who changes such a rule becomes its acting admin and it runs again. Their pending
attachments end ``failed`` ("no longer an active member of the org") rather than wait for a
worker to find that out. Their notification choices are kept (a reactivated user finds them).

Deleting a user's Google data: the jobs read for them (their requests, and the jobs of rules
they acted for) go, with each attachment's name and the email's subject and sender; so do the
notifications sent from their mailbox, the events naming them (sent or not yet sent) and the
answers remembered for their requests (``Idempotency-Key``). The files already saved
are the records' (drive's), not theirs.

Offboarding an org: every row of the org, in every table of the schema.

Each step runs in the request's transaction (committed when the route answers) and is
idempotent: run again, it finds nothing more to end or delete.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from automation_service.models import (
    AttachmentJob,
    AutomationModel,
    JobAttachment,
    Notification,
    idempotency_keys,
    outbox,
)
from automation_service.rules import pause_rules_acting_for
from automation_service.transfers import REQUESTER_GONE
from pipedesk_common.db import SessionDep
from pipedesk_common.erasure import erase_events, erase_org_rows, erase_remembered_answers
from pipedesk_common.lifecycle import GoogleDataDeletion, OrgOffboarding, UserDeactivation


class AutomationLifecycle:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def user_deactivated(
        self, deactivation: UserDeactivation, user_id: str
    ) -> dict[str, int]:
        session, org_id = self.session, deactivation.org_id
        paused = await pause_rules_acting_for(session, org_id, user_id)
        theirs = select(col(AttachmentJob.id)).where(
            col(AttachmentJob.org_id) == org_id, col(AttachmentJob.user_id) == user_id
        )
        ended = await session.execute(
            update(JobAttachment)
            .where(col(JobAttachment.job_id).in_(theirs), col(JobAttachment.status) == "pending")
            .values(status="failed", error=REQUESTER_GONE, updated_at=func.now())
        )
        await session.execute(
            update(AttachmentJob)
            .where(
                col(AttachmentJob.id).in_(theirs),
                col(AttachmentJob.finished_at).is_(None),
                ~select(col(JobAttachment.job_id))
                .where(
                    col(JobAttachment.job_id) == col(AttachmentJob.id),
                    col(JobAttachment.status) == "pending",
                )
                .exists(),
            )
            .values(finished_at=func.now())
        )
        return {"rules": paused, "attachments": int(getattr(ended, "rowcount", 0) or 0)}

    async def user_google_data_deleted(
        self, deletion: GoogleDataDeletion, user_id: str
    ) -> dict[str, int]:
        session, org_id = self.session, deletion.org_id
        jobs = await session.execute(
            delete(AttachmentJob).where(
                col(AttachmentJob.org_id) == org_id, col(AttachmentJob.user_id) == user_id
            )
        )
        notifications = await session.execute(
            delete(Notification).where(
                col(Notification.org_id) == org_id, col(Notification.sender_id) == user_id
            )
        )
        events = await erase_events(session, outbox, [user_id])
        answers = await erase_remembered_answers(session, idempotency_keys, org_id, user_id)
        return {
            "jobs": int(getattr(jobs, "rowcount", 0) or 0),
            "notifications": int(getattr(notifications, "rowcount", 0) or 0),
            "outbox_events": events,
            "idempotent_answers": answers,
        }

    async def org_offboarded(self, offboarding: OrgOffboarding, org_id: str) -> dict[str, int]:
        """Every row of the org: rules, jobs and their attachments, notifications, choices,
        settings, the access replica, sent events and the inbox rows naming it."""
        return await erase_org_rows(self.session, AutomationModel.metadata, org_id, outbox=outbox)


async def automation_lifecycle(session: SessionDep) -> AutomationLifecycle:
    return AutomationLifecycle(session)
