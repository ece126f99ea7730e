"""The gmail service's domain: connecting a mailbox, its sharing and blocklist, the org's mail
settings, watches (push) and disconnecting.

A mailbox is connected by its owner (``POST /api/gmail/mailbox``) or when the accounts service
announces a Google connection granting Gmail; its first sync reads the window. A watch on the
configured Pub/Sub topic is made by the mailbox's sync and renewed by the periodic job once it
is ``GMAIL_WATCH_RENEW_INTERVAL_SECONDS`` old (Gmail keeps it 7 days). Disconnecting stops the
watch (``users.stop``), forgets it, and applies the org's rule to the mailbox's mail:
``keep_metadata`` keeps its timeline items at ``metadata`` level, ``remove`` deletes them from
every timeline (each message's copy announced ``deleted``) and from the mirror.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gmail_service.mirror import (
    MESSAGE_LINKS,
    MailboxScope,
    MailRules,
    MessageRules,
    message_writer,
)
from gmail_service.models import TABLES, Mailbox, MirroredMessage, OrgMailSettings
from gmail_service.repository import GmailRepository
from gmail_service.sync import GmailRuntime, ensure_watch, gone_message, mailbox_key, scope_of
from pipedesk_common.auth import Principal
from pipedesk_common.errors import NotFound
from pipedesk_common.events import new_event
from pipedesk_common.events.gmail import GmailMessageUpdated
from pipedesk_common.google.credentials import GoogleNotConnected, GoogleReconnectRequired
from pipedesk_common.messaging import raise_if_cancelling
from pipedesk_common.mirror.disconnect import KEEP_METADATA, REMOVE
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.retention import Expire, retention_job
from pipedesk_common.mirror.runtime import google_user
from pipedesk_common.outbox import add_event
from pipedesk_common.periodic import PeriodicJob

log = logging.getLogger(__name__)


class MailboxNotConnected(NotFound):
    slug, title = "mailbox-not-connected", "Your mailbox is not connected to PipeDesk"


async def connect_mailbox(
    runtime: GmailRuntime, session: AsyncSession, org_id: str, user_id: str, email: str | None
) -> tuple[Mailbox, bool]:
    """The user's mailbox, connected (made if new), its sync requested; and whether it was
    connected just now."""
    now = runtime.clock.now()
    mailbox = await GmailRepository(session).ensure_mailbox(org_id, user_id, now)
    if mailbox.connected:
        if email and mailbox.user_email is None:
            mailbox.user_email = email.lower()
        return mailbox, False
    mailbox.user_email = email.lower() if email else mailbox.user_email
    mailbox.connected = True
    mailbox.history_id = None  # a full sync of the window
    mailbox.watch_renewed_at = mailbox.watch_expires_at = None
    mailbox.updated_at = now
    await session.flush()
    await runtime.work.request(session, mailbox_key(org_id, user_id))
    return mailbox, True


async def connect_own_mailbox(runtime: GmailRuntime, principal: Principal) -> tuple[Mailbox, bool]:
    """``connect_mailbox`` for the caller, once their Google connection grants Gmail."""
    await runtime.google.api.ensure_connected(google_user(principal))
    async with runtime.uow.write() as session:
        return await connect_mailbox(
            runtime, session, principal.org_id, principal.sub, principal.email
        )


async def own_mailbox(runtime: GmailRuntime, principal: Principal) -> Mailbox:
    async with runtime.uow.read() as session:
        mailbox = await GmailRepository(session).mailbox(principal.org_id, principal.sub)
    if mailbox is None or not mailbox.connected:
        raise MailboxNotConnected("connect your mailbox first: POST /api/gmail/mailbox")
    return mailbox


async def announce_again(runtime: GmailRuntime, session: AsyncSession, mailbox: Mailbox) -> int:
    """Every live message of the mailbox announced again under its current settings (a new
    sharing level or blocklist): each gets a new version."""
    scope = await scope_of(session, mailbox)
    return await _reannounce(runtime, session, scope)


async def _reannounce(runtime: GmailRuntime, session: AsyncSession, scope: MailboxScope) -> int:
    """Each live message of the mailbox gets a new version, announced under ``scope``'s rules
    (nothing of Google's changed, so the writer, which follows Google, is not asked)."""
    messages = await GmailRepository(session).live_messages(scope.mailbox.id)
    links = await MESSAGE_LINKS.of(session, [m.id for m in messages])
    now = runtime.clock.now()
    for message in messages:
        message.version += 1
        message.updated_at = now
        data = GmailMessageUpdated(
            **MessageRules().snapshot(scope, message, links[message.id], None)
        )
        await add_event(
            session,
            TABLES.outbox,
            new_event(data, org_id=message.org_id, actor_id=None, time=now),
        )
    await session.flush()
    return len(messages)


async def update_mailbox(
    runtime: GmailRuntime,
    principal: Principal,
    *,
    sharing: str | None,
    blocklist: list[str] | None,
) -> Mailbox:
    async with runtime.uow.write() as session:
        mailbox = await GmailRepository(session).mailbox(
            principal.org_id, principal.sub, for_update=True
        )
        if mailbox is None or not mailbox.connected:
            raise MailboxNotConnected("connect your mailbox first: POST /api/gmail/mailbox")
        changed = False
        if sharing is not None and sharing != mailbox.sharing:
            mailbox.sharing, changed = sharing, True
        if blocklist is not None and sorted(blocklist) != sorted(mailbox.blocklist):
            mailbox.blocklist, changed = sorted(set(blocklist)), True
        if changed:
            mailbox.updated_at = runtime.clock.now()
            await session.flush()
            await announce_again(runtime, session, mailbox)
        return mailbox


async def org_settings(runtime: GmailRuntime, org_id: str) -> OrgMailSettings:
    async with runtime.uow.read() as session:
        found = await GmailRepository(session).settings(org_id)
    return found or OrgMailSettings(org_id=org_id, updated_at=runtime.clock.now())


async def set_org_settings(
    runtime: GmailRuntime, org_id: str, values: dict[str, object]
) -> OrgMailSettings:
    """The org's mail settings replaced; every connected mailbox's mail announced again."""
    async with runtime.uow.write() as session:
        repository = GmailRepository(session)
        settings = await repository.settings(org_id, for_update=True)
        if settings is None:
            settings = OrgMailSettings(org_id=org_id, updated_at=runtime.clock.now())
            session.add(settings)
        for name, value in values.items():
            setattr(settings, name, value)
        settings.updated_at = runtime.clock.now()
        await session.flush()
        for mailbox in await repository.connected_mailboxes(org_id):
            await _reannounce(
                runtime, session, MailboxScope(mailbox, MailRules.of(mailbox, settings))
            )
        return settings


async def disconnect_mailbox(runtime: GmailRuntime, principal: Principal) -> None:
    """The owner disconnects their mailbox (see the module docstring)."""
    await own_mailbox(runtime, principal)
    await end_mailbox(runtime, principal.org_id, principal.sub)


async def user_deactivated(runtime: GmailRuntime, org_id: str, user_id: str) -> dict[str, int]:
    """Gmail's part of a user's deactivation (after the kit's): their mailbox ended as a
    disconnect ends it, its watch stopped at Google. Run again, it finds nothing to end."""
    return {"watches": await end_mailbox(runtime, org_id, user_id)}


async def user_google_disconnected(
    runtime: GmailRuntime, org_id: str, user_id: str
) -> dict[str, int]:
    """Gmail's part of a disconnect, before the grant is revoked: the mailbox's watch stopped at
    Google while the grant still works, then the mailbox ended under the org's disconnect rule."""
    return {"watches": await end_mailbox(runtime, org_id, user_id)}


async def user_google_data_deleted(
    runtime: GmailRuntime, org_id: str, user_id: str
) -> dict[str, int]:
    """Gmail's part of deleting a user's Google data, before the kit deletes their mailbox, its
    messages and their sent messages: the mailbox's watch stopped at Google. Google unavailable,
    nothing is deleted and the next call tries again; without access the watch lapses."""
    async with runtime.uow.read() as session:
        mailbox = await GmailRepository(session).mailbox(org_id, user_id)
    if mailbox is None or mailbox.watch_renewed_at is None:
        return {"watches": 0}
    with contextlib.suppress(GoogleNotConnected, GoogleReconnectRequired):
        await runtime.google.stop(mailbox.owner)
        return {"watches": 1}
    return {"watches": 0}


async def org_offboarded(runtime: GmailRuntime, org_id: str) -> dict[str, int]:
    """Gmail's part of an org's offboarding, before the kit deletes the org's mailboxes and
    mail: every watched mailbox's watch stopped at Google."""
    async with runtime.uow.read() as session:
        user_ids = (
            await session.scalars(
                select(col(Mailbox.user_id)).where(
                    col(Mailbox.org_id) == org_id, col(Mailbox.watch_renewed_at).is_not(None)
                )
            )
        ).all()
    watches = 0
    for user_id in sorted(user_ids):
        watches += (await user_google_data_deleted(runtime, org_id, user_id))["watches"]
    return {"watches": watches}


async def end_mailbox(runtime: GmailRuntime, org_id: str, user_id: str) -> int:
    """Stop the mailbox's watch at Google, then end it (``mailbox_ended``); the watches
    stopped. Google unavailable, nothing is ended and the next call tries again."""
    async with runtime.uow.read() as session:
        mailbox = await GmailRepository(session).mailbox(org_id, user_id)
    if mailbox is None or not mailbox.connected:
        return 0
    stopped = 0
    if mailbox.watch_renewed_at is not None:
        # Without access the watch lapses at Google within 7 days; nothing reaches us meanwhile.
        with contextlib.suppress(GoogleNotConnected, GoogleReconnectRequired):
            await runtime.google.stop(mailbox.owner)
            stopped = 1
    async with runtime.uow.write() as session:
        await mailbox_ended(runtime, session, org_id, user_id)
    return stopped


async def mailbox_ended(
    runtime: GmailRuntime, session: AsyncSession, org_id: str, user_id: str
) -> None:
    """The mailbox is no longer synced: its watch forgotten, its pending syncs dropped, its
    mail under the org's disconnect rule."""
    repository = GmailRepository(session)
    mailbox = await repository.mailbox(org_id, user_id, for_update=True)
    if mailbox is None or not mailbox.connected:
        return
    settings = await repository.settings(org_id)
    rule = settings.on_disconnect if settings else KEEP_METADATA
    mailbox.connected = False
    mailbox.history_id = None
    mailbox.watch_renewed_at = mailbox.watch_expires_at = None
    mailbox.updated_at = runtime.clock.now()
    await runtime.work.forget_user(session, org_id, user_id)
    rules = MailRules.of(mailbox, settings)
    writer = message_writer(runtime.clock)
    if rule == REMOVE:
        scope = MailboxScope(mailbox, rules)
        for message in await repository.live_messages(mailbox.id):
            await writer.apply(session, scope, gone_message(message), actor_id=None)
        await session.execute(
            delete(MirroredMessage).where(col(MirroredMessage.mailbox_id) == mailbox.id)
        )
    else:
        metadata = MailRules(rules.domains, rules.blocklist, "metadata")
        await _reannounce(runtime, session, MailboxScope(mailbox, metadata))


async def renew_watches(runtime: GmailRuntime) -> int:
    """Renew every watch made ``GMAIL_WATCH_RENEW_INTERVAL_SECONDS`` ago (or never made)."""
    if runtime.settings.pubsub_topic is None:
        return 0
    due = runtime.clock.now() - timedelta(seconds=runtime.settings.watch_renew_interval_seconds)
    async with runtime.uow.read() as session:
        mailboxes = await GmailRepository(session).watches_due(due)
    renewed = 0
    for mailbox in mailboxes:
        try:
            renewed += await ensure_watch(runtime, mailbox)
        except Exception:  # one mailbox's failure never stops the others'
            raise_if_cancelling()
            log.warning("could not renew the Gmail watch of a mailbox", exc_info=True)
    return renewed


async def mailbox_keys(session: AsyncSession) -> list[SyncKey]:
    """Every connected mailbox's sync (the catch-up of what push missed)."""
    mailboxes = await GmailRepository(session).connected_mailboxes()
    return [mailbox_key(m.org_id, m.user_id) for m in mailboxes]


async def resync_user(
    runtime: GmailRuntime, session: AsyncSession, org_id: str, user_id: str
) -> list[SyncKey]:
    """A full resync of the user's mailbox (after a reconnect, or asked by an operator)."""
    now = runtime.clock.now()
    mailbox = await GmailRepository(session).ensure_mailbox(org_id, user_id, now)
    mailbox.history_id = None
    mailbox.connected = True
    mailbox.updated_at = now
    await session.flush()
    return [mailbox_key(org_id, user_id)]


def expire_mail(runtime: GmailRuntime) -> Expire:
    """The org's mirrored mail older than the cutoff (by the message's date) leaves every
    timeline (as a message gone from the mailbox) and PipeDesk; how many messages left."""

    async def expire(session: AsyncSession, org_id: str, cutoff: datetime) -> int:
        repository = GmailRepository(session)
        settings = await repository.settings(org_id)
        mailboxes = (
            await session.scalars(
                select(Mailbox).where(col(Mailbox.org_id) == org_id).order_by(col(Mailbox.id))
            )
        ).all()
        writer = message_writer(runtime.clock)
        removed = 0
        for mailbox in mailboxes:
            old = (
                await session.scalars(
                    select(MirroredMessage).where(
                        col(MirroredMessage.mailbox_id) == mailbox.id,
                        col(MirroredMessage.internal_date) < cutoff,
                    )
                )
            ).all()
            if not old:
                continue
            scope = MailboxScope(mailbox, MailRules.of(mailbox, settings))
            for message in old:
                if not message.deleted:
                    await writer.apply(session, scope, gone_message(message), actor_id=None)
            await session.execute(
                delete(MirroredMessage).where(
                    col(MirroredMessage.id).in_([message.id for message in old])
                )
            )
            removed += len(old)
        return removed

    return expire


def gmail_jobs(runtime: GmailRuntime) -> list[PeriodicJob]:
    settings = runtime.settings
    return [
        PeriodicJob(
            "gmail.catch-up",
            timedelta(seconds=settings.catchup_interval_seconds),
            lambda: runtime.work.sync_all(mailbox_keys),
        ),
        PeriodicJob("gmail.renew-watches", timedelta(minutes=15), lambda: renew_watches(runtime)),
        retention_job(
            "gmail.retention",
            timedelta(seconds=settings.retention_interval_seconds),
            runtime.uow,
            runtime.clock,
            OrgMailSettings.__table__,  # type: ignore[attr-defined]
            expire_mail(runtime),
        ),
    ]
