"""Attachments-to-Drive jobs: who may ask, what a job is, and how its outcome reads.

A job is written with one ``automation.attachment.requested`` event per attachment in the same
transaction (the outbox); the worker (``transfers``) takes them one at a time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
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


def acting(org_id: str, user_id: str) -> dict[str, str]:
    """Whom gmail reads mail for: a user named by id, never by their token (gmail decides their
    level from the org directory and its own data)."""
    return {"org_id": org_id, "user_id": user_id}


async def message_attachments(
    context: ServiceContext, org_id: str, user_id: str, message_id: UUID
) -> dict[str, Any]:
    """The message's attachments as gmail lists them for the user, who must see it in full."""
    found: dict[str, Any] | None = await read_internal(
        context.http,
        context.issuer(),
        "gmail",
        f"{context.settings.url_of('gmail')}/internal/gmail/messages/{message_id}/attachments",
        what="a message's attachments",
        params=acting(org_id, user_id),
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
    data: AttachmentsToDrive,
    settings: AutomationSettings,
) -> JobPublic:
    listed = await message_attachments(context, principal.org_id, principal.sub, data.message_id)
    attachments = chosen(list(listed.get("attachments") or []), data.attachment_ids)
    if len(attachments) > settings.max_attachments_per_job:
        raise invalid(
            "attachment_ids",
            f"at most {settings.max_attachments_per_job} attachments per job",
            "too_many",
        )
    job = new_job(
        principal.org_id, principal.sub, data.message_id, data.record, listed, context.clock.now()
    )
    session.add(job)
    await session.flush()  # the job before its attachments (their foreign key)
    rows = await add_attachments(session, job, attachments, actor_id=principal.sub)
    return job_public(job, rows)


def new_job(
    org_id: str,
    user_id: str,
    message_id: UUID,
    record: RecordRef,
    listed: dict[str, Any],
    now: datetime,
    rule_id: UUID | None = None,
) -> AttachmentJob:
    """A job for attachments of a message (as gmail listed it), read for ``user_id``."""
    subject = listed.get("subject")
    sender = listed.get("sender")
    identity = listed.get("identity")
    return AttachmentJob(
        id=new_id(),
        org_id=org_id,
        user_id=user_id,
        message_id=message_id,
        record_type=record.type,
        record_id=record.id,
        rule_id=rule_id,
        source_identity=str(identity)[:300] if identity else None,
        source_subject=str(subject)[:500] if subject is not None else None,
        source_sender=str(sender)[:320] if sender else None,
        created_at=now,
    )


async def add_attachments(
    session: AsyncSession,
    job: AttachmentJob,
    attachments: list[dict[str, Any]],
    *,
    actor_id: str,
) -> list[JobAttachment]:
    """The job's attachments, and one ``automation.attachment.requested`` each (the outbox)."""
    now = job.created_at
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
                actor_id=actor_id,
                time=now,
            )
            for row in rows
        ],
    )
    return rows


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
    skipped = sum(1 for row in rows if row.status == "skipped")
    failed = sum(1 for row in rows if row.status == "failed")
    pending = len(rows) - saved - skipped - failed
    return JobPublic(
        id=job.id,
        message_id=job.message_id,
        record=RecordRef(type=job.record_type, id=job.record_id),
        rule_id=job.rule_id,
        status="pending" if pending else ("failed" if failed else "done"),
        saved=saved,
        skipped=skipped,
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
