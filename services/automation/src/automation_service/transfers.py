"""The worker: each ``automation.attachment.requested`` takes one attachment from the gmail
service to the record's ``Email attachments`` folder in the drive service, streamed through (one
attachment's chunks in memory at a time, never the file whole). A rule's attachment is held
aside first (a megabyte in memory, the rest on disk) while its MD5 is checked against the
folder's files: content the folder already holds is ``skipped``, naming that file.

Drive's save is keyed by (message, attachment, record): a redelivery, a retry after a crash
mid-transfer or a second job for the same attachment finds the file the first one saved.
An answer that will not change on retry (the user no longer sees the message in full, the
record is gone, the file is too large) ends the attachment as ``failed`` with its reason; any
other failure raises, so the shared runner retries it with backoff and, past its attempts,
dead-letters it with that reason.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import httpx
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from automation_service.jobs import acting
from automation_service.models import AttachmentJob, JobAttachment
from automation_service.settings import AutomationSettings
from pipedesk_common.app import ServiceContext
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.automation import AttachmentRequested

# What gmail answers that a retry would not change, and the reason the job shows.
GMAIL_FINAL: Final = {
    404: "the message or attachment is no longer readable in full by the requester",
    413: "the attachment is larger than Gmail downloads through PipeDesk allow",
}
# Gmail's problem type when the requester is no longer an active member of the org.
ACTING_USER_GONE: Final = "acting-user-not-found"
REQUESTER_GONE: Final = "the requester is no longer an active member of the org"
DRIVE_FINAL: Final = {
    404: "the record no longer exists, or has no Drive folder",
    413: "the attachment is larger than Drive uploads allow",
    422: "Drive refused the file's name or type",
}


# A rule's attachment is held aside while its hash is checked: this much in memory, then on disk.
SPOOL_MEMORY_BYTES: Final = 1 << 20
SPOOL_PIECE_BYTES: Final = 256 * 1024


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
        await session.execute(
            update(AttachmentJob)
            .where(col(AttachmentJob.id) == row.job_id)
            .values(finished_at=func.now())
        )


async def _user_gone(answer: httpx.Response) -> bool:
    """Whether gmail's ``404`` says the acting user (not the message) is gone."""
    await answer.aread()
    try:
        problem = answer.json()
    except ValueError:
        return False
    return isinstance(problem, dict) and str(problem.get("type", "")).endswith(ACTING_USER_GONE)


def _save_params(job: AttachmentJob, row: JobAttachment) -> dict[str, str]:
    """Drive's save: once per key, and what the file was saved from (for its timeline item)."""
    params = {
        "org_id": job.org_id,
        "name": file_name(row.filename),
        "key": drive_key(job, row.attachment_id),
    }
    if job.source_identity:
        params["from_message"] = job.source_identity
        params["from_subject"] = job.source_subject or ""
        if job.source_sender:
            params["from_sender"] = job.source_sender
    if job.rule_id is not None:
        params["rule_id"] = str(job.rule_id)
    return params


class Spooled:
    """An attachment's bytes held aside (in memory up to ``SPOOL_MEMORY_BYTES``, then on disk)
    with their MD5, so a rule can ask Drive whether the folder holds the same content first."""

    def __init__(self) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
        self.digest = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, piece: bytes) -> None:
        self.file.write(piece)
        self.digest.update(piece)
        self.size += len(piece)

    async def pieces(self) -> AsyncIterator[bytes]:
        self.file.seek(0)
        while piece := self.file.read(SPOOL_PIECE_BYTES):
            yield piece

    def close(self) -> None:
        self.file.close()


async def _same_content(
    context: ServiceContext,
    settings: AutomationSettings,
    job: AttachmentJob,
    md5: str,
    limits: httpx.Timeout,
) -> list[dict[str, Any]]:
    """The files of the record's ``Email attachments`` folder with this content."""
    answer = await context.http.get(
        f"{settings.url_of('drive')}/internal/records/{job.record_type}/{job.record_id}/files",
        params={"org_id": job.org_id, "md5": md5},
        headers={"Authorization": f"Bearer {context.issuer().token_for('drive')}"},
        timeout=limits,
    )
    if answer.status_code == 404:
        return []  # the record is gone: the save answers why
    if answer.status_code != 200:
        raise TransferFailed(
            f"the drive service answered {answer.status_code} looking for the content of "
            f"message {job.message_id}'s attachment in the folder"
        )
    found: list[dict[str, Any]] = answer.json()["items"]
    return found


def _ours(found: dict[str, Any], job: AttachmentJob, row: JobAttachment) -> bool:
    """A file this very job's attachment saved (before a crash or a lost answer)."""
    origin = found.get("origin") or {}
    return (
        found.get("name") == file_name(row.filename)
        and origin.get("message_id") == job.source_identity
        and origin.get("rule_id") == (str(job.rule_id) if job.rule_id else None)
    )


async def transfer(
    context: ServiceContext, settings: AutomationSettings, job: AttachmentJob, row: JobAttachment
) -> tuple[str, str | None, str | None]:
    """Gmail → Drive for one attachment: ``("saved", file id, None)``, ``("skipped", the
    folder's file with the same content, why)`` (a rule's job only) or ``("failed", None,
    reason)``; raises ``TransferFailed`` for what a retry may fix."""
    timeout = httpx.Timeout(settings.transfer_timeout_seconds, connect=5.0)
    issuer = context.issuer()
    source = (
        f"{settings.url_of('gmail')}/internal/gmail/messages/{job.message_id}"
        f"/attachments/{row.attachment_id}"
    )
    target = f"{settings.url_of('drive')}/internal/records/{job.record_type}/{job.record_id}/files"
    spooled: Spooled | None = None
    try:
        async with context.http.stream(
            "GET",
            source,
            params=acting(job.org_id, job.user_id),
            headers={"Authorization": f"Bearer {issuer.token_for('gmail')}"},
            timeout=timeout,
        ) as fetched:
            if fetched.status_code == 404 and await _user_gone(fetched):
                return "failed", None, REQUESTER_GONE
            if fetched.status_code in GMAIL_FINAL:
                return "failed", None, GMAIL_FINAL[fetched.status_code]
            if fetched.status_code != 200:
                raise TransferFailed(
                    f"the gmail service answered {fetched.status_code} for attachment "
                    f"{row.attachment_id} of message {job.message_id}"
                )
            length = fetched.headers.get("content-length", "0")

            async def streamed() -> AsyncIterator[bytes]:
                async for piece in fetched.aiter_raw():
                    yield piece

            body: AsyncIterator[bytes] = streamed()
            if job.rule_id is not None:
                # A rule skips content the folder already holds: the hash comes first.
                spooled = Spooled()
                async for piece in fetched.aiter_raw():
                    spooled.write(piece)
                md5 = spooled.digest.hexdigest()
                same = await _same_content(context, settings, job, md5, timeout)
                if same:
                    mine = [found for found in same if _ours(found, job, row)]
                    if mine:
                        return "saved", str(mine[0]["id"]), None
                    return (
                        "skipped",
                        str(same[0]["id"]),
                        (
                            f"the folder already holds the same content (md5 {md5}) as "
                            f"“{same[0]['name']}”"
                        )[:500],
                    )
                length = str(spooled.size)
                body = spooled.pieces()

            saved = await context.http.post(
                target,
                params=_save_params(job, row),
                headers={
                    "Authorization": f"Bearer {issuer.token_for('drive')}",
                    "Content-Length": length,
                    "Content-Type": row.mime_type,
                },
                content=body,
                timeout=timeout,
            )
    except httpx.HTTPError as exc:
        raise TransferFailed(
            f"attachment {row.attachment_id} of message {job.message_id}: the transfer broke "
            f"off ({type(exc).__name__})"
        ) from exc
    finally:
        if spooled is not None:
            spooled.close()
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
