"""A message's attachments for the automation service, read for the user it acts for.

The automation service names the user (``user_id``) and their org (``org_id``); it never holds
their token. Gmail decides that user's level on the message exactly as for their own token: from
the org directory (an active member of the org, with their role and teams, as CRM has them now)
and its own mail and access lists. Only a message they see in ``full`` answers (``404``
otherwise, as for their own download); a user who is not an active member of the org gets
nothing (``404``, ``acting-user-not-found``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from gmail_service.attachments import AttachmentNotFound, AttachmentReader, AttachmentTooLarge
from gmail_service.reading import Level, MailReader, MessageNotFound
from gmail_service.sync import GmailRuntime
from pipedesk_common.app import ContextDep, provided
from pipedesk_common.auth import Principal, ServiceCaller
from pipedesk_common.errors import NotFound, problem_responses
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.mirror.routes import GOOGLE_PROBLEMS
from pipedesk_common.mirror.runtime import MirrorRuntime

internal = APIRouter(prefix="/internal/gmail", tags=["internal"])

RuntimeDep = Annotated[GmailRuntime, Depends(provided(MirrorRuntime))]
AttachmentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9.]+$")]
AutomationCaller = Annotated[ServiceCaller, Depends(callers("automation"))]
OrgId = Annotated[str, Query(min_length=1, max_length=255, description="The acting user's org")]
UserId = Annotated[
    str, Query(min_length=1, max_length=255, description="The user the mail is read for")
]
ACTING = (
    "For the user `user_id` of org `org_id`, at their level now (the org directory's role and "
    "teams, an active member only)"
)


class ActingUserNotFound(NotFound):
    slug, title = "acting-user-not-found", "No such active user in the org"


class AttachmentListed(BaseModel):
    attachment_id: str
    filename: str
    mime_type: str
    size: int


class MessageAttachments(BaseModel):
    message_id: UUID
    identity: str = Field(description="The email's `Message-ID` (or its headers' digest)")
    subject: str
    sender: str | None
    attachments: list[AttachmentListed]


async def _acting(runtime: GmailRuntime, org_id: str, user_id: str) -> Principal:
    principal = await runtime.directory.acting_principal(org_id, user_id)
    if principal is None:
        raise ActingUserNotFound("the org has no active user with this id")
    return principal


@internal.get(
    "/messages/{message_id}/attachments",
    summary="A message's attachments, for a user who sees it in full (callers: automation)",
    description=f"{ACTING}; `404` below level `full`.",
    responses={**internal_problems(), **problem_responses(MessageNotFound, ActingUserNotFound)},
)
async def attachments_for_automation(
    message_id: UUID,
    caller: AutomationCaller,
    context: ContextDep,
    runtime: RuntimeDep,
    org_id: OrgId,
    user_id: UserId,
) -> MessageAttachments:
    principal = await _acting(runtime, org_id, user_id)
    shown = await MailReader(runtime, context).message(principal, message_id)
    if shown.level is not Level.FULL:
        raise MessageNotFound("no such message")
    return MessageAttachments(
        message_id=message_id,
        identity=shown.copy.identity,
        subject=shown.copy.subject,
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
        f"{ACTING}; `404` below level `full`, `413` over `GMAIL_MAX_ATTACHMENT_BYTES`. "
        "Streamed, with `Content-Length`."
    ),
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            "description": "The attachment's bytes",
        },
        **internal_problems(),
        **problem_responses(
            MessageNotFound, ActingUserNotFound, AttachmentNotFound, AttachmentTooLarge
        ),
        **problem_responses(*GOOGLE_PROBLEMS),
    },
)
async def attachment_for_automation(
    message_id: UUID,
    attachment_id: AttachmentId,
    caller: AutomationCaller,
    context: ContextDep,
    runtime: RuntimeDep,
    org_id: OrgId,
    user_id: UserId,
) -> StreamingResponse:
    principal = await _acting(runtime, org_id, user_id)
    download = await AttachmentReader(runtime, MailReader(runtime, context)).download(
        principal, message_id, attachment_id
    )
    return StreamingResponse(
        download.pieces,
        media_type="application/octet-stream",
        headers={"Content-Length": str(download.size)},
    )
