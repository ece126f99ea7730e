"""Sending and replying: ``POST /api/gmail/messages`` and ``…/messages/{message_id}/reply``,
from the caller's own connected mailbox only; and ``POST /internal/gmail/messages`` for the
automation service, from the org's automation sender or a named user.

Who may send: every role, from its own mailbox (a mailbox is its owner's alone, as in the rest
of the gmail API). Linking a record needs read access to it (a record the caller cannot read is
``404``). The body is JSON, or ``multipart/form-data`` with the JSON in a part named ``message``
and files in parts named ``attachments``. Each send needs an ``Idempotency-Key`` (see
``gmail_service.sending``)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlmodel import col, select

from gmail_service import sending
from gmail_service.compose import Attachment, Outgoing, reply_headers, without
from gmail_service.drive_files import drive_attachments
from gmail_service.models import Mailbox, MirroredMessage, OrgMailSettings
from gmail_service.repository import GmailRepository
from gmail_service.sending import Sender, SendOrder, Sent
from gmail_service.service import MailboxNotConnected
from gmail_service.sync import GmailRuntime
from pipedesk_common.app import ContextDep, PrincipalDep, ServiceContext, provided
from pipedesk_common.auth import Principal, ServiceCaller, bearer_token
from pipedesk_common.errors import (
    FieldError,
    Forbidden,
    InvalidInput,
    MalformedJson,
    NotFound,
    PayloadTooLarge,
    invalid,
    problem_responses,
)
from pipedesk_common.events.timeline import Link, RecordType
from pipedesk_common.idempotency import (
    HEADER,
    KEY_PATTERN,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    fingerprint,
)
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.mirror.links import LinkInput, LinkPublic, ordered, public_links
from pipedesk_common.mirror.routes import GOOGLE_PROBLEMS
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.rbac import Action

router = APIRouter(prefix="/api/gmail", tags=["gmail"])
internal = APIRouter(prefix="/internal/gmail", tags=["internal"])

RuntimeDep = Annotated[GmailRuntime, Depends(provided(MirrorRuntime))]
# An address as a message's headers carry it: an RFC 5322 dot-atom, ASCII, on either side of the
# "@" (no quoted local part, no comment), so that several joined in one header read back as they
# were written; a domain with a dot. The pattern is the check, so no whitespace around it either.
_ATOM_CHARACTER: Final = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM: Final = f"{_ATOM_CHARACTER}+(\\.{_ATOM_CHARACTER}+)*"
ADDRESS: Final = f"^{_DOT_ATOM}@{_ATOM_CHARACTER}+(\\.{_ATOM_CHARACTER}+)+$"
Address = Annotated[str, StringConstraints(to_lower=True, max_length=320, pattern=ADDRESS)]
Recipients = Annotated[list[Address], Field(max_length=100)]
MAX_ATTACHMENTS: Final = 20
FORM_BOUNDARY: Final = re.compile(r'boundary="?([^";]+)"?')
DISPOSITION_PARAMETER: Final = re.compile(r'(\w+)="([^"]*)"')


class MessageWrite(BaseModel):
    """What every send carries."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: Address | None = Field(
        None,
        alias="from",
        description="Your connected address (the default); any other address is refused (403)",
    )
    to: Recipients = Field(default_factory=list)
    cc: Recipients = Field(default_factory=list)
    bcc: Recipients = Field(default_factory=list)
    text: str | None = Field(None, max_length=2_000_000, description="The plain-text body")
    html: str | None = Field(None, max_length=2_000_000, description="The HTML body")
    links: list[LinkInput] = Field(
        default_factory=list,
        max_length=20,
        description="CRM records the sent message is linked to (read access needed)",
    )


class WithDriveFiles(MessageWrite):
    drive_file_ids: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="Drive files of records you may read, attached (their bytes, not links)",
    )


class MessageSend(WithDriveFiles):
    subject: str = Field("", max_length=998, pattern=r"^[^\r\n]*$")


class ReplySend(WithDriveFiles):
    reply_all: bool = Field(
        False, description="To everyone the message went to (your own address left out)"
    )


class InternalSend(MessageWrite):
    subject: str = Field("", max_length=998, pattern=r"^[^\r\n]*$")
    org_id: str = Field(min_length=1, max_length=255)
    sender_id: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="The user whose mailbox sends (their connection, or the org's domain-wide "
        "delegation); default: the org's automation sender",
    )
    key: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="The caller's key: the same key again never sends a second message",
    )
    links: list[LinkInput] = Field(default_factory=list, max_length=20)


class SentPublic(BaseModel):
    id: UUID = Field(description="The send's id")
    message_id: UUID | None = Field(
        description="The message in PipeDesk's mirror of the mailbox (null: a mailbox PipeDesk "
        "does not sync)"
    )
    google_id: str | None
    thread_id: str | None
    rfc822_message_id: str = Field(description="Its `Message-ID` header")
    sender: str
    sent_at: datetime | None
    links: list[LinkPublic]


M = TypeVar("M", bound=BaseModel)


# Required: a retry with the same key and payload answers the first send, never a second message.
KeyDep = Annotated[
    str,
    Header(
        alias=HEADER,
        pattern=KEY_PATTERN,
        description="A retry with the same key and payload answers the first send, never a "
        "second message (a send's key is kept with its record); 1 to 255 visible ASCII "
        "characters",
    ),
]


def _inlined(schema: Any, definitions: dict[str, Any]) -> Any:
    """A JSON schema with its ``$defs`` references replaced by the definitions themselves."""
    if isinstance(schema, dict):
        reference = schema.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inlined(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {k: _inlined(v, definitions) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    return schema


def send_body(model: type[BaseModel]) -> dict[str, Any]:
    """The request body of a send route: ``model`` as JSON, or in a form with its files (the
    ``message`` part, an object, is JSON: ``encoding`` says so)."""
    schema = model.model_json_schema(by_alias=True)
    json_schema = _inlined(schema, schema.get("$defs", {}))
    return {
        "requestBody": {
            "required": True,
            "description": "The message as JSON, or `multipart/form-data` with the JSON in a "
            "part named `message` and each file in a part named `attachments`",
            "content": {
                "application/json": {"schema": json_schema},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "message": {
                                **json_schema,
                                "description": f"The message, JSON: {model.__name__}",
                            },
                            "attachments": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "maxItems": MAX_ATTACHMENTS,
                                "description": "Each a file with a plain name (no path)",
                            },
                        },
                        "required": ["message"],
                        "additionalProperties": False,
                    },
                    "encoding": {"message": {"contentType": "application/json"}},
                },
            },
        }
    }


def _checked(model: type[M], payload: Any) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None


def _form_parts(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a ``multipart/form-data`` body: each one's disposition parameters and
    content, byte for byte."""
    found = FORM_BOUNDARY.search(content_type)
    if found is None:
        raise invalid("body", "a multipart body names its boundary", "malformed")
    delimiter = b"--" + found.group(1).encode("latin-1")
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise invalid("body", "the multipart body is cut short", "malformed")
    parts = []
    for section in sections[1:-1]:
        head, separator, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator or not content.endswith(b"\r\n"):
            raise invalid("body", "a part of the multipart body is malformed", "malformed")
        parameters: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                parameters = dict(DISPOSITION_PARAMETER.findall(value))
            elif name.strip().lower() == "content-type":
                parameters["content-type"] = value.strip()
        parts.append((parameters, content[:-2]))
    return parts


async def _read_body(request: Request, model: type[M]) -> tuple[M, list[Attachment]]:
    """The message (JSON, or the ``message`` part of a form) and its uploaded files."""
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    if not content_type.startswith("multipart/form-data"):
        try:
            payload = json.loads(body)
        except ValueError:
            raise MalformedJson("the body could not be parsed as JSON") from None
        return _checked(model, payload), []
    message: Any = None
    attachments: list[Attachment] = []
    for parameters, content in _form_parts(content_type, body):
        name = parameters.get("name")
        if name == "message":
            try:
                message = json.loads(content)
            except ValueError:
                raise invalid("message", "the part is not JSON", "json_invalid") from None
        elif name == "attachments":
            filename = parameters.get("filename", "").strip()
            if not filename or len(filename) > 255 or any(c in filename for c in "\r\n\0/\\"):
                raise invalid("attachments", "each file needs a plain file name", "filename")
            mime = parameters.get("content-type") or "application/octet-stream"
            if not re.fullmatch(r"[\w.+-]+/[\w.+-]+", mime):
                mime = "application/octet-stream"
            attachments.append(Attachment(filename, mime.lower(), content))
        else:
            raise invalid(name or "body", "not a part of a send (message, attachments)", "extra")
    if message is None:
        raise invalid("message", "the form needs a part named message", "missing")
    if len(attachments) > MAX_ATTACHMENTS:
        raise invalid("attachments", f"at most {MAX_ATTACHMENTS} files", "too_many")
    return _checked(model, message), attachments


def _digest(data: BaseModel, attachments: list[Attachment], *extra: object) -> str:
    """The send's meaning, to recognise a key reused for another message."""
    files = [[a.filename, a.mime_type, hashlib.sha256(a.content).hexdigest()] for a in attachments]
    return fingerprint([data.model_dump(mode="json", by_alias=True), files, *extra])


async def _sending_mailbox(
    runtime: GmailRuntime, principal: Principal, data: MessageWrite
) -> Sender:
    async with runtime.uow.read() as session:
        mailbox = await GmailRepository(session).mailbox(principal.org_id, principal.sub)
    if mailbox is None or not mailbox.connected or mailbox.user_email is None:
        raise MailboxNotConnected("connect your mailbox first: POST /api/gmail/mailbox")
    if data.sender is not None and data.sender != mailbox.user_email:
        raise Forbidden(
            "you may send only from your own connected address",
            errors=[
                FieldError(
                    field="body.from",
                    message=f"not your connected address ({mailbox.user_email})",
                    code="not_your_address",
                )
            ],
        )
    return Sender(principal.org_id, principal.sub, mailbox.user_email)


async def _readable_links(
    runtime: GmailRuntime, principal: Principal, links: list[LinkInput]
) -> list[Link]:
    """The links, each to a record the caller may read (``404`` naming the link otherwise)."""
    async with runtime.uow.write() as session:
        for index, link in enumerate(links):
            if not await runtime.replica.can(
                session, principal, Action.READ, link.type, str(link.id)
            ):
                raise _no_such_record(index, link)
    return ordered(Link(type=RecordType(link.type), id=str(link.id)) for link in links)


def _no_such_record(index: int, link: LinkInput) -> NotFound:
    return NotFound(
        f"links.{index}: no such {link.type}",
        errors=[
            FieldError(
                field=f"body.links.{index}", message=f"no such {link.type}", code="not_found"
            )
        ],
    )


async def _with_drive_files(
    request: Request,
    context: ServiceContext,
    runtime: GmailRuntime,
    data: WithDriveFiles,
    uploaded: list[Attachment],
) -> list[Attachment]:
    """The uploaded files and the Drive files named, read for the caller."""
    if not data.drive_file_ids:
        return uploaded
    if len(uploaded) + len(data.drive_file_ids) > MAX_ATTACHMENTS:
        raise invalid("drive_file_ids", f"at most {MAX_ATTACHMENTS} files in all", "too_many")
    budget = runtime.settings.max_message_bytes - sum(len(a.content) for a in uploaded)
    token = bearer_token(request.headers.get("authorization"))
    return [*uploaded, *await drive_attachments(context, token, data.drive_file_ids, budget)]


def _recipients_required(to: list[str], cc: list[str], bcc: list[str]) -> None:
    if not (to or cc or bcc):
        raise invalid("to", "at least one recipient (to, cc or bcc)", "missing")


def _answer(sent: Sent, response: Response) -> SentPublic:
    row = sent.row
    response.status_code = status.HTTP_201_CREATED if sent.created else status.HTTP_200_OK
    if row.message_id is not None:
        response.headers["Location"] = f"/api/gmail/messages/{row.message_id}"
    return SentPublic(
        id=row.id,
        message_id=row.message_id,
        google_id=row.google_id,
        thread_id=row.thread_id,
        rfc822_message_id=row.rfc822_message_id,
        sender=row.sender_email,
        sent_at=row.sent_at,
        links=public_links(sent.links),
    )


SEND_PROBLEMS: Final = (
    Forbidden,
    NotFound,
    InvalidInput,
    PayloadTooLarge,
    IdempotencyKeyReused,
    IdempotencyKeyInProgress,
    *GOOGLE_PROBLEMS,
)
SEND_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": SentPublic, "description": "The key's first send, answered again"},
    **problem_responses(*SEND_PROBLEMS),
}


@router.post(
    "/messages",
    status_code=status.HTTP_201_CREATED,
    summary="Send a message from your connected mailbox, with attachments and links to records",
    description=(
        "From your own connected address only (`from`, if given, must be it: `403` "
        "otherwise). `Idempotency-Key` is required: the same key again answers the first "
        "send (`200`), never a second message, also when Gmail's answer to the first was "
        "lost. A message over `GMAIL_MAX_MESSAGE_BYTES` encoded is `413` before Google is "
        "asked. Linked records need read access (`404` otherwise); the message shows on their "
        "timelines at once."
    ),
    openapi_extra=send_body(MessageSend),
    responses=SEND_RESPONSES,
)
async def send_message(
    request: Request,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    context: ContextDep,
    key: KeyDep,
    response: Response,
) -> SentPublic:
    data, uploaded = await _read_body(request, MessageSend)
    sender = await _sending_mailbox(runtime, principal, data)
    _recipients_required(data.to, data.cc, data.bcc)
    links = await _readable_links(runtime, principal, data.links)
    attachments = await _with_drive_files(request, context, runtime, data, uploaded)
    order = SendOrder(
        sender=sender,
        scope=f"user:{principal.sub}",
        key=key,
        fingerprint=_digest(data, uploaded, "send"),
        outgoing=Outgoing(
            sender=sender.email,
            to=data.to,
            cc=without(data.cc, data.to),
            bcc=without(data.bcc, data.to, data.cc),
            subject=data.subject,
            text=data.text,
            html=data.html,
            attachments=attachments,
        ),
        actor_id=principal.sub,
        links=links,
    )
    return _answer(await sending.send(runtime, order), response)


async def _own_copy(
    runtime: GmailRuntime, principal: Principal, message_id: UUID
) -> MirroredMessage:
    """The caller's own copy of a message of their org (by its id, or by its ``Message-ID``
    when the id is another mailbox's copy): ``404`` when they hold none."""
    async with runtime.uow.read() as session:
        mailbox = await GmailRepository(session).mailbox(principal.org_id, principal.sub)
        if mailbox is None or not mailbox.connected:
            raise MailboxNotConnected("connect your mailbox first: POST /api/gmail/mailbox")
        named = (
            await session.scalars(
                select(MirroredMessage).where(
                    col(MirroredMessage.id) == message_id,
                    col(MirroredMessage.org_id) == principal.org_id,
                )
            )
        ).one_or_none()
        if named is not None and named.mailbox_id != mailbox.id:
            named = await _copy_in(session, mailbox, named.identity)
    if named is None or named.deleted:
        raise NotFound("no such message in your mailbox")
    return named


async def _copy_in(session: Any, mailbox: Mailbox, identity: str) -> MirroredMessage | None:
    found: MirroredMessage | None = (
        await session.scalars(
            select(MirroredMessage)
            .where(
                col(MirroredMessage.mailbox_id) == mailbox.id,
                col(MirroredMessage.identity) == identity,
                col(MirroredMessage.deleted).is_(False),
            )
            .limit(1)
        )
    ).one_or_none()
    return found


@router.post(
    "/messages/{message_id}/reply",
    status_code=status.HTTP_201_CREATED,
    summary="Reply (or reply to all) to a message of your mailbox, in its Gmail thread",
    description=(
        "The reply keeps the thread: Gmail's `threadId`, `In-Reply-To` and `References`, "
        "and a `Re:` subject (never doubled). It goes to the message's `Reply-To` or sender "
        "(to its recipients when you sent it); with `reply_all` to everyone it went to, your "
        "own address left out; `to`, `cc` and `bcc` add recipients. A message you hold no "
        "copy of is `404`. Otherwise as sending."
    ),
    openapi_extra=send_body(ReplySend),
    responses=SEND_RESPONSES,
)
async def reply_to_message(
    message_id: UUID,
    request: Request,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    context: ContextDep,
    key: KeyDep,
    response: Response,
) -> SentPublic:
    data, uploaded = await _read_body(request, ReplySend)
    sender = await _sending_mailbox(runtime, principal, data)
    original = await _own_copy(runtime, principal, message_id)
    links = await _readable_links(runtime, principal, data.links)
    attachments = await _with_drive_files(request, context, runtime, data, uploaded)
    headers = await runtime.google.original(sender.google_user, original.google_id)
    if headers is None:
        raise NotFound("the message is no longer in your mailbox")
    reply = reply_headers(headers, sender.email, reply_all=data.reply_all)
    to = without([*reply.to, *data.to])
    cc = without([*reply.cc, *data.cc], to)
    bcc = without(data.bcc, to, cc)
    _recipients_required(to, cc, bcc)
    order = SendOrder(
        sender=sender,
        scope=f"user:{principal.sub}",
        key=key,
        fingerprint=_digest(data, uploaded, "reply", str(message_id)),
        outgoing=Outgoing(
            sender=sender.email,
            to=to,
            cc=cc,
            bcc=bcc,
            subject=reply.subject,
            text=data.text,
            html=data.html,
            attachments=attachments,
            in_reply_to=reply.in_reply_to,
            references=reply.references,
        ),
        actor_id=principal.sub,
        thread_id=headers.thread_id or original.thread_id,
        links=links,
    )
    return _answer(await sending.send(runtime, order), response)


# --- for the automation service ----------------------------------------------------------------


async def _automation_sender(runtime: GmailRuntime, data: InternalSend) -> Sender:
    """The named user, or the org's automation sender: a user of the org, by the directory."""
    user_id = data.sender_id
    field = "sender_id"
    if user_id is None:
        async with runtime.uow.read() as session:
            settings: OrgMailSettings | None = await GmailRepository(session).settings(data.org_id)
        user_id = settings.automation_sender_id if settings else None
        if user_id is None:
            raise invalid(field, "the org has no automation sender configured: name one", "missing")
    member = await runtime.directory.user(data.org_id, user_id)
    if member is None or not member.active or not member.email:
        raise invalid(field, "not an active user of the org", "unknown_user")
    return Sender(data.org_id, member.id, member.email.lower())


async def _links_of_org(runtime: GmailRuntime, org_id: str, links: list[LinkInput]) -> list[Link]:
    async with runtime.uow.write() as session:
        for index, link in enumerate(links):
            access = await runtime.replica.access_list(session, link.type, str(link.id))
            if access is None or access.org_id != org_id:
                raise _no_such_record(index, link)
    return ordered(Link(type=RecordType(link.type), id=str(link.id)) for link in links)


@internal.post(
    "/messages",
    status_code=status.HTTP_201_CREATED,
    summary="Send a message for an automation, once per `key` (callers: automation)",
    description=(
        "From `sender_id`'s mailbox (their own connection, or the org's domain-wide "
        "delegation when it covers their address), or, without it, from the org's automation "
        "sender (`automation_sender_id` of the org's mail settings). The same `key` again "
        "answers the first send (`200`), never a second message; after a lost answer the "
        "mailbox is searched for the message before any second attempt."
    ),
    responses={
        **internal_problems(),
        **problem_responses(
            NotFound, InvalidInput, PayloadTooLarge, IdempotencyKeyReused, *GOOGLE_PROBLEMS
        ),
    },
)
async def send_for_automation(
    data: InternalSend,
    caller: Annotated[ServiceCaller, Depends(callers("automation"))],
    runtime: RuntimeDep,
    response: Response,
) -> SentPublic:
    _recipients_required(data.to, data.cc, data.bcc)
    sender = await _automation_sender(runtime, data)
    if data.sender is not None and data.sender != sender.email:
        raise invalid("from", f"the sender's address is {sender.email}", "not_the_sender")
    links = await _links_of_org(runtime, data.org_id, data.links)
    order = SendOrder(
        sender=sender,
        scope=f"service:{caller.name}",
        key=data.key,
        fingerprint=_digest(data, []),
        outgoing=Outgoing(
            sender=sender.email,
            to=data.to,
            cc=without(data.cc, data.to),
            bcc=without(data.bcc, data.to, data.cc),
            subject=data.subject,
            text=data.text,
            html=data.html,
            attachments=[],
        ),
        actor_id=None,
        links=links,
    )
    return _answer(await sending.send(runtime, order), response)
