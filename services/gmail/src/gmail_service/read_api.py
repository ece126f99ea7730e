"""Reading mail: a message, a thread, a record's messages, each at the viewer's level; linking
mail to a record by hand; downloading an attachment (level ``full`` only). Who may read what is
``gmail_service.reading``'s rule; who may link, ``gmail_service.linking``'s."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Response, status
from fastapi.responses import StreamingResponse

from gmail_service.attachments import AttachmentNotFound, AttachmentReader, AttachmentTooLarge
from gmail_service.linking import LinkNotFound, MailTarget, link_mail, unlink_mail
from gmail_service.read_schemas import MailLinkPublic, MessagePublic, ThreadPublic, message_public
from gmail_service.reading import MailReader, MessageNotFound
from gmail_service.sync import GmailRuntime
from pipedesk_common.app import ContextDep, PrincipalDep, provided
from pipedesk_common.downloads import download_headers
from pipedesk_common.errors import Forbidden, InvalidCursor, NotFound, problem_responses
from pipedesk_common.events.timeline import Link, RecordType
from pipedesk_common.mirror.links import LinkInput, LinkPublic
from pipedesk_common.mirror.routes import GOOGLE_PROBLEMS
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.pagination import Page, PageCursor, PageLimit

router = APIRouter(prefix="/api/gmail", tags=["gmail"])

RuntimeDep = Annotated[GmailRuntime, Depends(provided(MirrorRuntime))]
ThreadId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
AttachmentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9.]+$")]
RecordKind = Literal["lead", "deal"]
MEDIA_TYPE = re.compile(r"[a-z0-9][\w.+-]{0,126}/[a-z0-9][\w.+-]{0,126}")


def _reader(runtime: RuntimeDep, context: ContextDep) -> MailReader:
    return MailReader(runtime, context)


ReaderDep = Annotated[MailReader, Depends(_reader)]


@router.get(
    "/messages/{message_id}",
    summary="A message, at your level: your own mail in full, a teammate's on a record you read "
    "at their mailbox's sharing level",
    description=(
        "`message_id` is PipeDesk's id of any mailbox's copy: the answer is the message as "
        "you are shown it (the copy you may see most of). `404` for mail you hold no copy of "
        "that is on no lead or deal you can read."
    ),
    responses=problem_responses(MessageNotFound),
)
async def read_message(
    message_id: UUID, principal: PrincipalDep, reader: ReaderDep
) -> MessagePublic:
    return message_public(await reader.message(principal, message_id))


@router.get(
    "/threads/{thread_id}",
    summary="A thread's messages you may read, oldest first, each at your level",
    description=(
        "`thread_id` is Gmail's id of the thread as a message's `thread_id` gives it. Messages "
        "of the thread you may not read are left out; `404` when that is all of them."
    ),
    responses=problem_responses(NotFound),
)
async def read_thread(
    thread_id: ThreadId, principal: PrincipalDep, reader: ReaderDep
) -> ThreadPublic:
    shown = await reader.thread(principal, thread_id)
    return ThreadPublic(thread_id=thread_id, messages=[message_public(item) for item in shown])


@router.get(
    "/records/{record_type}/{record_id}/messages",
    summary="A record's messages, newest first, each at your level",
    description=(
        "The mail on the record's timeline (matched or linked by hand), a page at a time: pass "
        "`next_cursor` back as `cursor` until it is null. `404` for a record you cannot read."
    ),
    responses=problem_responses(NotFound, InvalidCursor),
)
async def record_messages(
    record_type: RecordKind,
    record_id: UUID,
    principal: PrincipalDep,
    reader: ReaderDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[MessagePublic]:
    record = Link(type=RecordType(record_type), id=str(record_id))
    await reader.require_readable_record(principal, record)
    scope = f"gmail-record-messages:{principal.org_id}:{record_type}:{record_id}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    shown, last = await reader.record_messages(principal, record, after=after, limit=limit)
    next_cursor = (
        context.cursors.encode_keyset(last.occurred_at, last.item_id, scope=scope)
        if last is not None
        else None
    )
    return Page(items=[message_public(item) for item in shown], next_cursor=next_cursor)


def _link_public(record: Link, thread_id: str | None, messages: list[UUID]) -> MailLinkPublic:
    return MailLinkPublic(
        record=LinkPublic(type=record.type.value, id=record.id),
        thread_id=thread_id,
        messages=messages,
    )


LINK_PROBLEMS = (NotFound, Forbidden)


@router.post(
    "/threads/{thread_id}/links",
    status_code=status.HTTP_201_CREATED,
    summary="Link your thread to a lead or deal by hand (audited): it shows on the record's "
    "timeline",
    description=(
        "Your copies of the thread's messages get the link. `404` for a record you cannot "
        "read (or mail you cannot read), `403` for a record you may not change or mail that "
        "is not in your mailbox."
    ),
    responses=problem_responses(*LINK_PROBLEMS),
)
async def link_thread(
    thread_id: ThreadId,
    body: LinkInput,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    reader: ReaderDep,
) -> MailLinkPublic:
    change = await link_mail(runtime, reader, principal, MailTarget(thread_id=thread_id), body)
    return _link_public(change.record, change.thread_id, [m.id for m in change.messages])


@router.post(
    "/messages/{message_id}/links",
    status_code=status.HTTP_201_CREATED,
    summary="Link your message to a lead or deal by hand (audited)",
    description=(
        "Your copy of the message (`message_id`: any copy's id) gets the link; as for threads."
    ),
    responses=problem_responses(*LINK_PROBLEMS),
)
async def link_message(
    message_id: UUID,
    body: LinkInput,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    reader: ReaderDep,
) -> MailLinkPublic:
    change = await link_mail(runtime, reader, principal, MailTarget(message_id=message_id), body)
    return _link_public(change.record, change.thread_id, [m.id for m in change.messages])


@router.delete(
    "/threads/{thread_id}/links/{record_type}/{record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unlink your thread from a record (audited): it leaves the record's timeline unless "
    "matched there",
    description=(
        "Your copies of the thread's messages lose the link. `404` for a record you cannot "
        "read, mail you cannot read, or a link that is not there; `403` for a record you may "
        "not change or mail that is not in your mailbox."
    ),
    responses=problem_responses(*LINK_PROBLEMS, LinkNotFound),
)
async def unlink_thread(
    thread_id: ThreadId,
    record_type: RecordKind,
    record_id: UUID,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    reader: ReaderDep,
) -> Response:
    record = LinkInput(type=record_type, id=record_id)
    await unlink_mail(runtime, reader, principal, MailTarget(thread_id=thread_id), record)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/messages/{message_id}/links/{record_type}/{record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unlink your message from a record (audited)",
    description=(
        "Your copy of the message (`message_id`: any copy's id) loses the link; as for threads."
    ),
    responses=problem_responses(*LINK_PROBLEMS, LinkNotFound),
)
async def unlink_message(
    message_id: UUID,
    record_type: RecordKind,
    record_id: UUID,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    reader: ReaderDep,
) -> Response:
    record = LinkInput(type=record_type, id=record_id)
    await unlink_mail(runtime, reader, principal, MailTarget(message_id=message_id), record)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/messages/{message_id}/attachments/{attachment_id}",
    response_class=StreamingResponse,
    summary="Download an attachment of a message you see in full",
    description=(
        "Always as an attachment (`Content-Disposition: attachment`, `X-Content-Type-Options: "
        "nosniff`), never rendered. `404` below level `full`; `413` over "
        "`GMAIL_MAX_ATTACHMENT_BYTES`."
    ),
    responses={
        200: {
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The file, as an attachment",
        },
        **problem_responses(MessageNotFound, AttachmentNotFound, AttachmentTooLarge),
        **problem_responses(*GOOGLE_PROBLEMS),
    },
)
async def download_attachment(
    message_id: UUID,
    attachment_id: AttachmentId,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    reader: ReaderDep,
) -> StreamingResponse:
    download = await AttachmentReader(runtime, reader).download(
        principal, message_id, attachment_id
    )
    headers = {**download_headers(download.filename), "Content-Length": str(download.size)}
    # The type is the sender's word: anything but a plain media type is served as bytes.
    kind = download.mime_type.lower()
    media_type = kind if MEDIA_TYPE.fullmatch(kind) else "application/octet-stream"
    return StreamingResponse(download.pieces, media_type=media_type, headers=headers)
