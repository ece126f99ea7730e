"""Gmail routes: the caller's mailbox (connect, read, share, disconnect), the org's mail settings
(admins), and Pub/Sub push. Every route checks the caller before any Google call or write.

A mailbox is its owner's alone: every role may connect, share and disconnect its own (no route
names another user's mailbox); the org's settings are read by admins and managers and set by
admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status
from prometheus_client import Counter

from gmail_service import service
from gmail_service.models import Mailbox, OrgMailSettings
from gmail_service.push import PushVerifier, notification
from gmail_service.repository import GmailRepository
from gmail_service.schemas import (
    MailboxPublic,
    MailboxUpdate,
    OrgMailSettingsPublic,
    OrgMailSettingsWrite,
)
from gmail_service.settings import GmailSettings
from gmail_service.sync import GmailRuntime, mailbox_key
from pipedesk_common.app import PrincipalDep, provided
from pipedesk_common.auth import Principal, Role
from pipedesk_common.errors import (
    Forbidden,
    InvalidInput,
    Unauthorized,
    invalid,
    problem_responses,
)
from pipedesk_common.mirror.routes import GOOGLE_PROBLEMS
from pipedesk_common.mirror.runtime import MirrorRuntime

router = APIRouter(prefix="/api/gmail", tags=["gmail"])
webhooks = APIRouter(tags=["webhooks"])

RuntimeDep = Annotated[GmailRuntime, Depends(provided(MirrorRuntime))]
PUSHES = Counter("pipedesk_gmail_pushes_total", "Gmail push notifications by outcome", ["outcome"])


async def _org_default(runtime: GmailRuntime, org_id: str) -> str:
    return (await service.org_settings(runtime, org_id)).default_sharing


def _mailbox_public(mailbox: Mailbox, default: str) -> MailboxPublic:
    return MailboxPublic(
        connected=mailbox.connected,
        email=mailbox.user_email,
        sharing=mailbox.sharing or default,
        sharing_is_org_default=mailbox.sharing is None,
        blocklist=mailbox.blocklist,
        synced_at=mailbox.synced_at,
        window_start=mailbox.window_start,
        watch_expires_at=mailbox.watch_expires_at,
    )


def _settings_public(settings: OrgMailSettings) -> OrgMailSettingsPublic:
    return OrgMailSettingsPublic.model_validate(settings, from_attributes=True)


@router.post(
    "/mailbox",
    summary="Connect your mailbox: its mail of the last GMAIL_WINDOW_DAYS is synced",
    description=(
        "Your Google connection must grant Gmail. The window is synced newest first, "
        "then history and push keep it in step; `200` when it was already connected (as it "
        "is once a Google connection granting Gmail is announced)."
    ),
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": MailboxPublic, "description": "Already connected: the mailbox as it is"},
        **problem_responses(*GOOGLE_PROBLEMS),
    },
)
async def connect_mailbox(
    principal: PrincipalDep, runtime: RuntimeDep, response: Response
) -> MailboxPublic:
    mailbox, connected = await service.connect_own_mailbox(runtime, principal)
    response.status_code = status.HTTP_201_CREATED if connected else status.HTTP_200_OK
    return _mailbox_public(mailbox, await _org_default(runtime, principal.org_id))


@router.get(
    "/mailbox",
    summary="Your mailbox: its sharing level, blocklist and sync",
    description=(
        "Your own mailbox only: its sharing level (`metadata`, `subject`, `full`), "
        "blocklist, sync state and watch."
    ),
    responses=problem_responses(service.MailboxNotConnected),
)
async def get_mailbox(principal: PrincipalDep, runtime: RuntimeDep) -> MailboxPublic:
    mailbox = await service.own_mailbox(runtime, principal)
    return _mailbox_public(mailbox, await _org_default(runtime, principal.org_id))


@router.patch(
    "/mailbox",
    summary="Set your mailbox's sharing level or blocklist (its mail is announced again)",
    description=(
        "A new sharing level or blocklist (addresses, `@domains`) applies to the mail "
        "already synced: each message is announced again, so timelines show it at the "
        "new level."
    ),
    responses=problem_responses(service.MailboxNotConnected, InvalidInput),
)
async def update_mailbox(
    body: MailboxUpdate, principal: PrincipalDep, runtime: RuntimeDep
) -> MailboxPublic:
    mailbox = await service.update_mailbox(
        runtime, principal, sharing=body.sharing, blocklist=body.blocklist
    )
    return _mailbox_public(mailbox, await _org_default(runtime, principal.org_id))


@router.delete(
    "/mailbox",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disconnect your mailbox: its watch stopped, its mail under the org's rule",
    description=(
        "Stops the Gmail watch (`users.stop`) and the sync; its mail is kept at "
        "metadata level or removed, as the org's `on_disconnect` says."
    ),
    responses=problem_responses(service.MailboxNotConnected, *GOOGLE_PROBLEMS),
)
async def disconnect_mailbox(principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    await service.disconnect_mailbox(runtime, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an admin may change the org's mail settings")


@router.get(
    "/settings",
    summary="The org's mail settings (admins and managers)",
    description=(
        "The org's own domains, blocklist, default sharing level and what a "
        "disconnected mailbox's mail becomes."
    ),
    responses=problem_responses(Forbidden),
)
async def get_settings(principal: PrincipalDep, runtime: RuntimeDep) -> OrgMailSettingsPublic:
    if principal.role not in (Role.ADMIN, Role.MANAGER):
        raise Forbidden("only admins and managers read the org's mail settings")
    return _settings_public(await service.org_settings(runtime, principal.org_id))


@router.put(
    "/settings",
    summary="Set the org's mail settings (admins): its domains, blocklist, default sharing "
    "level and what a disconnected mailbox's mail becomes",
    description=(
        "Replaces the org's mail settings; every connected mailbox's mail is announced "
        "again under them."
    ),
    responses=problem_responses(Forbidden, InvalidInput),
)
async def put_settings(
    body: OrgMailSettingsWrite, principal: PrincipalDep, runtime: RuntimeDep
) -> OrgMailSettingsPublic:
    _admin(principal)
    sender = body.automation_sender_id
    if sender is not None and await runtime.directory.user(principal.org_id, sender) is None:
        raise invalid("automation_sender_id", "not a user of your organisation", "unknown_user")
    settings = await service.set_org_settings(runtime, principal.org_id, body.model_dump())
    return _settings_public(settings)


_verifiers: dict[int, tuple[GmailSettings, PushVerifier]] = {}


def verifier_of(settings: GmailSettings) -> PushVerifier:
    """The push verifier of a process's settings (made once: it keeps Google's keys)."""
    kept = _verifiers.get(id(settings))
    if kept is None or kept[0] is not settings:
        kept = _verifiers[id(settings)] = (settings, PushVerifier(settings))
    return kept[1]


@webhooks.post(
    "/webhooks/google/gmail",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Gmail push notifications (Pub/Sub push, verified by its OIDC token)",
    responses=problem_responses(Unauthorized, InvalidInput),
)
async def gmail_push(
    request: Request,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Pub/Sub push of Gmail's watch notifications: a sync of the mailbox is requested."""
    try:
        await verifier_of(runtime.settings).verify(authorization)
    except Unauthorized:
        PUSHES.labels("refused").inc()
        raise
    try:
        envelope = await request.json()
    except ValueError:
        raise InvalidInput("the body is not a Pub/Sub push envelope") from None
    note = notification(envelope)
    async with runtime.uow.write() as session:
        mailboxes = await GmailRepository(session).mailboxes_of_address(note.email_address)
        for mailbox in mailboxes:
            # Coalesced per mailbox: a burst of notifications is one more sync at most.
            await runtime.work.request(session, mailbox_key(mailbox.org_id, mailbox.user_id))
    PUSHES.labels("sync_requested" if mailboxes else "ignored").inc()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
