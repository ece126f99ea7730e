"""The worker: each ``automation.attachment.requested`` takes one attachment from the gmail
service to the record's ``Email attachments`` folder in the drive service, streamed through (one
attachment's chunks in memory at a time, never the file whole).

Drive's save is keyed by (message, attachment, record): a redelivery, a retry after a crash
mid-transfer or a second job for the same attachment finds the file the first one saved.
An answer that will not change on retry (the user no longer sees the message in full, the
record is gone, the file is too large) ends the attachment as ``failed`` with its reason; any
other failure raises, so the shared runner retries it with backoff and, past its attempts,
dead-letters it with that reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Final

import httpx
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from automation_service.jobs import ACTING_USER
from automation_service.models import AttachmentJob, JobAttachment
from automation_service.settings import AutomationSettings
from pipedesk_common.app import ServiceContext
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.automation import AttachmentRequested

# What gmail answers that a retry would not change, and the reason the job shows.
GMAIL_FINAL: Final = {
    401: "the requester's sign-in expired before the attachment was saved; ask again",
    404: "the message or attachment is no longer readable in full by the requester",
    413: "the attachment is larger than Gmail downloads through PipeDesk allow",
}
DRIVE_FINAL: Final = {
    404: "the record no longer exists, or has no Drive folder",
    413: "the attachment is larger than Drive uploads allow",
    422: "Drive refused the file's name or type",
}


class TransferFailed(RuntimeError):
    """A failure worth retrying; its message is the reason a dead letter shows."""


def file_name(name: str) -> str:
    """The attachment's name as Drive takes it: no slash or control character, 255 at most."""
    cleaned = "".join("_" if c == "/" or ord(c) < 32 else c for c in name).strip()
    return (cleaned or "attachment")[:255]


def drive_key(job: AttachmentJob, attachment_id: str) -> str:
    """One file per (message, attachment, record), however often it is asked for."""
    return f"gmail:{job.message_id}:{attachment_id}:{job.record_type}:{job.record_id}"


async def _finish(session: AsyncSession, row: JobAttachment, **values: object) -> None:
    await session.execute(
        update(JobAttachment)
        .where(
            col(JobAttachment.job_id) == row.job_id,
            col(JobAttachment.attachment_id) == row.attachment_id,
        )
        .values(**values, updated_at=func.now())
    )
    pending = await session.scalar(
        select(func.count())
        .select_from(JobAttachment)
        .where(col(JobAttachment.job_id) == row.job_id, col(JobAttachment.status) == "pending")
    )
    if not pending:
        # Every attachment has its outcome: the requester's token is no longer needed.
        await session.execute(
            update(AttachmentJob)
            .where(col(AttachmentJob.id) == row.job_id)
            .values(finished_at=func.now(), acting_token=None)
        )


async def transfer(
    context: ServiceContext, settings: AutomationSettings, job: AttachmentJob, row: JobAttachment
) -> tuple[str, str | None, str | None]:
    """Gmail → Drive for one attachment: ``("saved", file id, None)`` or
    ``("failed", None, reason)``; raises ``TransferFailed`` for what a retry may fix."""
    timeout = httpx.Timeout(settings.transfer_timeout_seconds, connect=5.0)
    issuer = context.issuer()
    source = (
        f"{settings.url_of('gmail')}/internal/gmail/messages/{job.message_id}"
        f"/attachments/{row.attachment_id}"
    )
    target = f"{settings.url_of('drive')}/internal/records/{job.record_type}/{job.record_id}/files"
    try:
        async with context.http.stream(
            "GET",
            source,
            headers={
                "Authorization": f"Bearer {issuer.token_for('gmail')}",
                ACTING_USER: job.acting_token or "",
            },
            timeout=timeout,
        ) as fetched:
            if fetched.status_code in GMAIL_FINAL:
                return "failed", None, GMAIL_FINAL[fetched.status_code]
            if fetched.status_code != 200:
                raise TransferFailed(
                    f"the gmail service answered {fetched.status_code} for attachment "
                    f"{row.attachment_id} of message {job.message_id}"
                )
            length = fetched.headers.get("content-length", "0")

            async def body() -> AsyncIterator[bytes]:
                async for piece in fetched.aiter_raw():
                    yield piece

            saved = await context.http.post(
                target,
                params={
                    "org_id": job.org_id,
                    "name": file_name(row.filename),
                    "key": drive_key(job, row.attachment_id),
                },
                headers={
                    "Authorization": f"Bearer {issuer.token_for('drive')}",
                    "Content-Length": length,
                    "Content-Type": row.mime_type,
                },
                content=body(),
                timeout=timeout,
            )
    except httpx.HTTPError as exc:
        raise TransferFailed(
            f"attachment {row.attachment_id} of message {job.message_id}: the transfer broke "
            f"off ({type(exc).__name__})"
        ) from exc
    if saved.status_code in DRIVE_FINAL:
        return "failed", None, DRIVE_FINAL[saved.status_code]
    if saved.status_code not in {200, 201}:
        raise TransferFailed(
            f"the drive service answered {saved.status_code} saving attachment "
            f"{row.attachment_id} of message {job.message_id}"
        )
    return "saved", str(saved.json()["id"]), None


def subscribe_transfers(
    consumer: Consumer, context: Callable[[], ServiceContext], settings: AutomationSettings
) -> None:
    """Save each requested attachment once; the job's row says how it ended."""

    @consumer.on(AttachmentRequested)
    async def on_requested(session: AsyncSession, event: Event[AttachmentRequested]) -> None:
        data = event.data
        job = await session.get(AttachmentJob, data.job_id)
        row = await session.get(JobAttachment, (data.job_id, data.attachment_id))
        if job is None or row is None or job.org_id != data.org_id or row.status != "pending":
            return
        status, file_id, reason = await transfer(context(), settings, job, row)
        await _finish(session, row, status=status, file_id=file_id, error=reason)
