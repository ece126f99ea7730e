"""A message's attachments for the automation service, read for the user it acts for: their own
PipeDesk token goes along in ``X-Acting-User-Token`` and only a message they see in ``full``
answers (``404`` otherwise, as for their own download)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from gmail_service.attachments import AttachmentNotFound, AttachmentReader, AttachmentTooLarge
from gmail_service.drive_files import ACTING_USER
from gmail_service.reading import Level, MailReader, MessageNotFound
from gmail_service.sync import GmailRuntime
from pipedesk_common.app import ContextDep, provided
from pipedesk_common.auth import Principal, ServiceCaller
from pipedesk_common.errors import Unauthorized, problem_responses
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.mirror.routes import GOOGLE_PROBLEMS
from pipedesk_common.mirror.runtime import MirrorRuntime

internal = APIRouter(prefix="/internal/gmail", tags=["internal"])

RuntimeDep = Annotated[GmailRuntime, Depends(provided(MirrorRuntime))]
AttachmentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9.]+$")]
AutomationCaller = Annotated[ServiceCaller, Depends(callers("automation"))]


class AttachmentListed(BaseModel):
    attachment_id: str
    filename: str
    mime_type: str
    size: int


class MessageAttachments(BaseModel):
    message_id: UUID
    sender: str | None
    attachments: list[AttachmentListed]


async def _acting(context: ContextDep, token: str | None) -> Principal:
    if not token:
        raise Unauthorized(f"{ACTING_USER} is required: the user the mail is read for")
    return await context.user_tokens.principal(token)


@internal.get(
    "/messages/{message_id}/attachments",
    summary="A message's attachments, for a user who sees it in full (callers: automation)",
    description=f"The acting user's own token in `{ACTING_USER}`; `404` below level `full`.",
    responses={**internal_problems(), **problem_responses(MessageNotFound)},
)
async def attachments_for_automation(
    message_id: UUID,
    caller: AutomationCaller,
    context: ContextDep,
    runtime: RuntimeDep,
    acting_user: Annotated[str | None, Header(alias=ACTING_USER)] = None,
) -> MessageAttachments:
    principal = await _acting(context, acting_user)
    shown = await MailReader(runtime, context).message(principal, message_id)
    if shown.level is not Level.FULL:
        raise MessageNotFound("no such message")
    return MessageAttachments(
        message_id=message_id,
        sender=shown.copy.sender,
        attachments=[
            AttachmentListed(
                attachment_id=str(listed.get("part_id")),
                filename=str(listed.get("filename") or "attachment"),
                mime_type=str(listed.get("mime_type") or "application/octet-stream"),
                size=int(listed.get("size") or 0),
            )
            for listed in shown.copy.attachments
            if listed.get("part_id")
        ],
    )


@internal.get(
    "/messages/{message_id}/attachments/{attachment_id}",
    response_class=StreamingResponse,
    summary="One attachment's bytes, for a user who sees its message in full (callers: automation)",
    description=(
        f"The acting user's own token in `{ACTING_USER}`; `404` below level `full`, `413` over "
        "`GMAIL_MAX_ATTACHMENT_BYTES`. Streamed, with `Content-Length`."
    ),
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            "description": "The attachment's bytes",
        },
        **internal_problems(),
        **problem_responses(MessageNotFound, AttachmentNotFound, AttachmentTooLarge),
        **problem_responses(*GOOGLE_PROBLEMS),
    },
)
async def attachment_for_automation(
    message_id: UUID,
    attachment_id: AttachmentId,
    caller: AutomationCaller,
    context: ContextDep,
    runtime: RuntimeDep,
    acting_user: Annotated[str | None, Header(alias=ACTING_USER)] = None,
) -> StreamingResponse:
    principal = await _acting(context, acting_user)
    download = await AttachmentReader(runtime, MailReader(runtime, context)).download(
        principal, message_id, attachment_id
    )
    return StreamingResponse(
        download.pieces,
        media_type="application/octet-stream",
        headers={"Content-Length": str(download.size)},
    )
