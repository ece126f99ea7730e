"""Linking mail to a record by hand, for mail the matching rules did not attach (a thread with
an address no contact has yet, an internal thread about a deal), and unlinking it.

Only the mail's owner links it: their own copies of the thread's messages (or of one message)
get the link, to a lead or deal they may change (``404`` for one they cannot read, ``403`` for
one they read but may not change). Each copy changed gets a new version, announced
``gmail.message.updated`` with its links, so the timeline attaches the item to the record (or
detaches it); the change is published as ``gmail.audit.recorded`` in the same transaction, for
the org's audit log. A teammate who may read the mail but does not hold it gets ``403``; anyone
else ``404``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from gmail_service.mirror import MESSAGE_LINKS, MessageRules
from gmail_service.models import TABLES, MirroredMessage
from gmail_service.read_repository import MailReadRepository
from gmail_service.reading import MailReader, MessageNotFound
from gmail_service.sync import GmailRuntime, scope_of
from pipedesk_common.auth import Principal
from pipedesk_common.errors import Forbidden, NotFound
from pipedesk_common.events import new_event
from pipedesk_common.events.gmail import GmailAuditRecorded, GmailMessageUpdated
from pipedesk_common.events.timeline import Link
from pipedesk_common.ids import new_id
from pipedesk_common.mirror.links import LinkInput, check_links, ordered
from pipedesk_common.outbox import add_event

LINKED = "mail_linked"
UNLINKED = "mail_unlinked"


class LinkNotFound(NotFound):
    slug, title = "mail-link-not-found", "The mail is not linked to that record"


@dataclass(frozen=True)
class MailTarget:
    """What is linked: a thread of the caller's mailbox (Gmail's id), or one message (any
    copy's id)."""

    thread_id: str | None = None
    message_id: UUID | None = None


@dataclass(frozen=True)
class LinkChange:
    record: Link
    messages: list[MirroredMessage]
    thread_id: str | None


async def _own_copies(
    session: AsyncSession, principal: Principal, target: MailTarget
) -> Sequence[MirroredMessage]:
    return await MailReadRepository(session).own_copies(
        principal.org_id, principal.sub, thread_id=target.thread_id, message=target.message_id
    )


async def _not_owned(reader: MailReader, principal: Principal, target: MailTarget) -> Exception:
    """The refusal of a caller holding none of the mail: ``403`` if they may read it, else
    ``404``."""
    try:
        if target.message_id is not None:
            await reader.message(principal, target.message_id)
        else:
            await reader.thread(principal, target.thread_id or "")
    except NotFound:
        if target.message_id is not None:
            return MessageNotFound("no such message")
        return NotFound("no such thread")
    return Forbidden("only the mailbox's owner links its mail to records")


async def _announce(
    runtime: GmailRuntime,
    session: AsyncSession,
    principal: Principal,
    message: MirroredMessage,
    links: list[Link],
) -> None:
    await MESSAGE_LINKS.replace(session, message.id, message.org_id, links)
    now = runtime.clock.now()
    message.version += 1
    message.updated_at = now
    mailbox = await MailReadRepository(session).mailbox_of(message.mailbox_id)
    assert mailbox is not None  # a message's mailbox is deleted with it
    scope = await scope_of(session, mailbox)
    data = GmailMessageUpdated(**MessageRules().snapshot(scope, message, links, principal.sub))
    await add_event(
        session,
        TABLES.outbox,
        new_event(data, org_id=message.org_id, actor_id=principal.sub, time=now),
    )


async def _audit(
    runtime: GmailRuntime,
    session: AsyncSession,
    principal: Principal,
    action: str,
    change: LinkChange,
) -> None:
    now = runtime.clock.now()
    data = GmailAuditRecorded(
        id=str(new_id()),
        org_id=principal.org_id,
        record=change.record,
        action=action,
        actor_id=principal.sub,
        thread_id=change.thread_id,
        message_ids=sorted({message.identity for message in change.messages}),
        occurred_at=now,
    )
    await add_event(
        session,
        TABLES.outbox,
        new_event(data, org_id=principal.org_id, actor_id=principal.sub, time=now),
    )


async def link_mail(
    runtime: GmailRuntime,
    reader: MailReader,
    principal: Principal,
    target: MailTarget,
    record: LinkInput,
) -> LinkChange:
    """Link the caller's own copies of the mail to ``record`` (see the module docstring)."""
    async with runtime.uow.write() as session:
        (link,) = await check_links(runtime.replica, session, principal, [record], noun="mail")
        copies = await _own_copies(session, principal, target)
        if copies:
            current = await MESSAGE_LINKS.of(session, [m.id for m in copies])
            changed = [m for m in copies if link not in current[m.id]]
            for message in changed:
                await _announce(
                    runtime, session, principal, message, ordered([*current[message.id], link])
                )
            change = LinkChange(link, list(copies), _thread_of(target, copies))
            if changed:
                await _audit(runtime, session, principal, LINKED, change)
            return change
    raise await _not_owned(reader, principal, target)


async def unlink_mail(
    runtime: GmailRuntime,
    reader: MailReader,
    principal: Principal,
    target: MailTarget,
    record: LinkInput,
) -> None:
    """Remove the link to ``record`` from the caller's own copies of the mail."""
    async with runtime.uow.write() as session:
        (link,) = await check_links(runtime.replica, session, principal, [record], noun="mail")
        copies = await _own_copies(session, principal, target)
        if copies:
            current = await MESSAGE_LINKS.of(session, [m.id for m in copies])
            changed = [m for m in copies if link in current[m.id]]
            if not changed:
                raise LinkNotFound(f"the mail is not linked to that {record.type}")
            for message in changed:
                kept = [other for other in current[message.id] if other != link]
                await _announce(runtime, session, principal, message, kept)
            change = LinkChange(link, changed, _thread_of(target, copies))
            await _audit(runtime, session, principal, UNLINKED, change)
            return
    raise await _not_owned(reader, principal, target)


def _thread_of(target: MailTarget, copies: Sequence[MirroredMessage]) -> str | None:
    if target.thread_id is not None:
        return target.thread_id
    return copies[0].thread_id if copies else None
