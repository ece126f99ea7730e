"""Attachments-to-Drive jobs: who may ask, what a job is, and how its outcome reads.

A job is written with one ``automation.attachment.requested`` event per attachment in the same
transaction (the outbox); the worker (``transfers``) takes them one at a time.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from automation_service.models import AttachmentJob, JobAttachment, outbox
from automation_service.schemas import (
    AttachmentsToDrive,
    JobAttachmentPublic,
    JobPublic,
    RecordRef,
)
from automation_service.settings import AutomationSettings
from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ServiceContext
from pipedesk_common.auth import Principal, Role
from pipedesk_common.errors import Forbidden, NotFound, invalid, not_found
from pipedesk_common.events import new_event
from pipedesk_common.events.automation import AttachmentRequested
from pipedesk_common.ids import new_id
from pipedesk_common.internal_calls import read_internal
from pipedesk_common.outbox import add_events_to
from pipedesk_common.rbac import Action, can

ACTING_USER: Final = "X-Acting-User-Token"


async def writable_record(
    session: AsyncSession, replica: AccessReplica, principal: Principal, record: RecordRef
) -> None:
    """``404`` for a record the caller cannot read (or of another org), ``403`` for one they
    read but may not change."""
    access = await replica.access_list(session, record.type, str(record.id))
    if (
        access is None
        or access.org_id != principal.org_id
        or not can(principal, Action.READ, access)
    ):
        raise not_found("record.id", record.type)
    if not can(principal, Action.UPDATE, access):
        raise Forbidden(f"you may not add files to this {record.type}")


async def message_attachments(
    context: ServiceContext, user_token: str, message_id: UUID
) -> dict[str, Any]:
    """The message's attachments as gmail lists them for the user, who must see it in full."""
    found: dict[str, Any] | None = await read_internal(
        context.http,
        context.issuer(),
        "gmail",
        f"{context.settings.url_of('gmail')}/internal/gmail/messages/{message_id}/attachments",
        what="a message's attachments",
        headers={ACTING_USER: user_token},
    )
    if found is None:
        raise not_found("message_id", "message")
    return found


def chosen(listed: list[dict[str, Any]], wanted: list[str] | None) -> list[dict[str, Any]]:
    by_id = {item["attachment_id"]: item for item in listed}
    if wanted is None:
        if not listed:
            raise invalid("message_id", "the message has no attachments", "no_attachments")
        return listed
    for index, attachment_id in enumerate(wanted):
        if attachment_id not in by_id:
            raise invalid(
                f"attachment_ids.{index}", "not an attachment of the message", "unknown_attachment"
            )
    return [by_id[attachment_id] for attachment_id in dict.fromkeys(wanted)]


async def create_job(
    session: AsyncSession,
    context: ServiceContext,
    principal: Principal,
    user_token: str,
    data: AttachmentsToDrive,
    settings: AutomationSettings,
) -> JobPublic:
    listed = await message_attachments(context, user_token, data.message_id)
    attachments = chosen(list(listed.get("attachments") or []), data.attachment_ids)
    if len(attachments) > settings.max_attachments_per_job:
        raise invalid(
            "attachment_ids",
            f"at most {settings.max_attachments_per_job} attachments per job",
            "too_many",
        )
    now = context.clock.now()
    job = AttachmentJob(
        id=new_id(),
        org_id=principal.org_id,
        user_id=principal.sub,
        message_id=data.message_id,
        record_type=data.record.type,
        record_id=data.record.id,
        acting_token=user_token,
        created_at=now,
    )
    session.add(job)
    await session.flush()  # the job before its attachments (their foreign key)
    rows = [
        JobAttachment(
            job_id=job.id,
            attachment_id=item["attachment_id"],
            filename=str(item["filename"])[:500],
            mime_type=str(item["mime_type"])[:255],
            size=int(item["size"]),
            updated_at=now,
        )
        for item in attachments
    ]
    session.add_all(rows)
    await add_events_to(
        session,
        outbox,
        [
            new_event(
                AttachmentRequested(
                    job_id=job.id, org_id=job.org_id, attachment_id=row.attachment_id
                ),
                org_id=job.org_id,
                actor_id=principal.sub,
                time=now,
            )
            for row in rows
        ],
    )
    return job_public(job, rows)


async def read_job(session: AsyncSession, principal: Principal, job_id: UUID) -> JobPublic:
    """A job of the caller's org that they asked for (admins: any of the org's)."""
    job = await session.get(AttachmentJob, job_id)
    if job is None or job.org_id != principal.org_id:
        raise NotFound("no such job")
    if job.user_id != principal.sub and principal.role is not Role.ADMIN:
        raise NotFound("no such job")
    rows = (
        await session.scalars(
            select(JobAttachment)
            .where(col(JobAttachment.job_id) == job_id)
            .order_by(col(JobAttachment.attachment_id))
        )
    ).all()
    return job_public(job, list(rows))


def job_public(job: AttachmentJob, rows: list[JobAttachment]) -> JobPublic:
    saved = sum(1 for row in rows if row.status == "saved")
    failed = sum(1 for row in rows if row.status == "failed")
    pending = len(rows) - saved - failed
    return JobPublic(
        id=job.id,
        message_id=job.message_id,
        record=RecordRef(type=job.record_type, id=job.record_id),
        status="pending" if pending else ("failed" if failed else "done"),
        saved=saved,
        failed=failed,
        total=len(rows),
        created_at=job.created_at,
        finished_at=job.finished_at,
        attachments=[
            JobAttachmentPublic(
                attachment_id=row.attachment_id,
                filename=row.filename,
                mime_type=row.mime_type,
                size=row.size,
                status=row.status,
                file_id=row.file_id,
                error=row.error,
            )
            for row in rows
        ],
    )
