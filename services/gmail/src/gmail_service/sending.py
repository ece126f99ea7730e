"""Sending and replying: a message is sent once, whatever is retried.

Every send carries a key (the caller's ``Idempotency-Key``, or the automation service's
``key``). Before Gmail is asked, a ``gmail.sent_messages`` row is written for that key with the
``Message-ID`` the message will carry (generated here, from the row's id), and the request holds
it for ``SEND_LEASE``:

- the same key again, once sent, answers the same message (nothing is sent); with another
  payload ``422 idempotency-key-reused``; while the first request still holds it, ``409``;
- a send whose outcome is unknown (a timeout, a lost answer, a 5xx once the request went out) is
  looked up in the mailbox by its ``Message-ID`` (``rfc822msgid:``) before any second attempt:
  by the Google kit's ``reconcile`` within the request, and by a retry of a request that died
  after asking Gmail (``attempted_at`` set) before it asks again.

A sent message is written to the mailbox mirror at once, with its links, as the sync would
write it (same Gmail id, same ``Message-ID``): it shows on the linked records' timelines at
once, and the sync's later read of it updates that one item.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gmail_service.compose import Outgoing, compose, rfc822_message_id
from gmail_service.google import GmailMessage, MessageRef
from gmail_service.mirror import MESSAGE_LINKS, MailboxScope, MailRules, message_writer
from gmail_service.models import Mailbox, SentMessage
from gmail_service.repository import GmailRepository
from gmail_service.sync import GmailRuntime
from pipedesk_common.errors import FieldError, PayloadTooLarge
from pipedesk_common.events.timeline import Link
from pipedesk_common.google import GoogleUser
from pipedesk_common.idempotency import IdempotencyKeyInProgress, IdempotencyKeyReused
from pipedesk_common.ids import new_id

# How long a request holds a send: longer than the Google kit's retries of one call take.
SEND_LEASE: Final = timedelta(minutes=3)


@dataclass(frozen=True)
class Sender:
    """The mailbox a message is sent from: a PipeDesk user's Google account."""

    org_id: str
    user_id: str
    email: str

    @property
    def google_user(self) -> GoogleUser:
        return GoogleUser(org_id=self.org_id, user_id=self.user_id, email=self.email)


@dataclass(frozen=True)
class SendOrder:
    """One send, checked: who sends, under which key, what, in which thread, linked to what."""

    sender: Sender
    scope: str  # who keyed it: ``user:<sub>`` or ``service:<name>``
    key: str
    fingerprint: str
    outgoing: Outgoing
    actor_id: str | None
    thread_id: str | None = None
    links: Sequence[Link] = field(default_factory=list)


@dataclass(frozen=True)
class Sent:
    row: SentMessage
    links: list[Link]
    created: bool  # False: the answer given to this key before


def too_large(size: int, limit: int) -> PayloadTooLarge:
    detail = f"the message is {size} bytes encoded; Gmail sends at most {limit}"
    return PayloadTooLarge(
        detail, errors=[FieldError(field="body", message=detail, code="message_too_large")]
    )


async def send(runtime: GmailRuntime, order: SendOrder) -> Sent:
    """Send ``order`` once (see the module docstring)."""
    sent_id = new_id()
    now = runtime.clock.now()
    message_id = rfc822_message_id(sent_id, order.sender.email)
    raw = compose(order.outgoing, message_id, now)
    limit = runtime.settings.max_message_bytes
    if len(raw) > limit:  # before anything is kept or asked of Google
        raise too_large(len(raw), limit)
    claimed = await _claim(runtime, order, sent_id, message_id, now)
    if claimed.sent_at is not None:
        return Sent(claimed, await _links_of(runtime, claimed), created=False)
    if claimed.id != sent_id:
        # A retry: the same message as the first attempt's (its Message-ID and date).
        raw = compose(order.outgoing, claimed.rfc822_message_id, claimed.created_at)
    google = runtime.google
    user = order.sender.google_user
    try:
        found: MessageRef | None = None
        if claimed.attempted_at is not None:
            # An earlier request asked Gmail and died: did Gmail send it?
            found = await google.sent_by_id(user, claimed.rfc822_message_id)
        if found is None:
            await _attempting(runtime, claimed.id)
            found = await google.send(user, raw, order.thread_id, claimed.rfc822_message_id)
    except BaseException:
        await _let_go(runtime, claimed.id)
        raise
    row = await _record(runtime, order, claimed.id, found, raw)
    return Sent(row, list(order.links), created=True)


async def _claim(
    runtime: GmailRuntime, order: SendOrder, sent_id: UUID, message_id: str, now: datetime
) -> SentMessage:
    """The key's row, held by this request (made if new); its earlier answer if it was sent."""
    table = SentMessage.__table__  # type: ignore[attr-defined]
    async with runtime.uow.write() as session:
        await session.execute(
            insert(table)
            .values(
                id=sent_id,
                org_id=order.sender.org_id,
                user_id=order.sender.user_id,
                sender_email=order.sender.email,
                scope=order.scope,
                key=order.key,
                fingerprint=order.fingerprint,
                rfc822_message_id=message_id,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["org_id", "scope", "key"])
        )
        row = (
            await session.scalars(
                select(SentMessage)
                .where(
                    col(SentMessage.org_id) == order.sender.org_id,
                    col(SentMessage.scope) == order.scope,
                    col(SentMessage.key) == order.key,
                )
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).one()
        if row.fingerprint != order.fingerprint:
            raise IdempotencyKeyReused.for_another_payload()
        if row.sent_at is not None:
            return row
        if row.lease_until is not None and row.lease_until > now:
            raise IdempotencyKeyInProgress(
                "a send with this Idempotency-Key is still running; retry later",
                headers={"Retry-After": "5"},
            )
        row.lease_until = now + SEND_LEASE
        await session.flush()
        return row


async def _attempting(runtime: GmailRuntime, sent_id: UUID) -> None:
    """Noted before Gmail is asked: a retry of a request that dies now looks before sending."""
    async with runtime.uow.write() as session:
        row = await session.get(SentMessage, sent_id, with_for_update=True)
        assert row is not None
        row.attempted_at = runtime.clock.now()


async def _let_go(runtime: GmailRuntime, sent_id: UUID) -> None:
    async with runtime.uow.write() as session:
        row = await session.get(SentMessage, sent_id, with_for_update=True)
        if row is not None:
            row.lease_until = None


async def _record(
    runtime: GmailRuntime, order: SendOrder, sent_id: UUID, found: MessageRef, raw: bytes
) -> SentMessage:
    """The sent message in the sender's mirror (when PipeDesk syncs that mailbox), with its
    links, announced; and the key's row marked sent."""
    now = runtime.clock.now()
    async with runtime.uow.write() as session:
        row = await session.get(SentMessage, sent_id, with_for_update=True)
        assert row is not None
        mailbox = await GmailRepository(session).mailbox(order.sender.org_id, order.sender.user_id)
        if mailbox is not None and mailbox.connected:
            mirrored = await _mirror(runtime, session, mailbox, order, found, raw)
            row.message_id = mirrored
        row.google_id = found.id
        row.thread_id = found.thread_id or None
        row.sent_at = now
        row.lease_until = None
        await session.flush()
        return row


async def _mirror(
    runtime: GmailRuntime,
    session: AsyncSession,
    mailbox: Mailbox,
    order: SendOrder,
    found: MessageRef,
    raw: bytes,
) -> UUID | None:
    settings = await GmailRepository(session).settings(mailbox.org_id)
    scope = MailboxScope(mailbox, MailRules.of(mailbox, settings))
    sent_at = runtime.clock.now()
    resource = GmailMessage(
        id=found.id,
        thread_id=found.thread_id,
        label_ids=found.label_ids or ["SENT"],
        internal_date=str(int(sent_at.timestamp() * 1000)),
        encoded=base64.urlsafe_b64encode(raw).decode(),
    )
    writer = message_writer(runtime.clock)
    mirrored = await writer.apply(
        session, scope, resource, actor_id=order.actor_id, links=list(order.links)
    )
    return mirrored.id if mirrored is not None else None


async def _links_of(runtime: GmailRuntime, row: SentMessage) -> list[Link]:
    if row.message_id is None:
        return []
    async with runtime.uow.read() as session:
        links = await MESSAGE_LINKS.of(session, [row.message_id])
    return links.get(row.message_id, [])
