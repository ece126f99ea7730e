"""A mailbox's sync into the mirror, with the kit's paged sync.

The first sync of a mailbox (and a full resync) reads the window (``GMAIL_WINDOW_DAYS``) newest
first: a page of ids, then each message's bytes; the mailbox's ``historyId`` is taken before the
listing, so what changes meanwhile is read by the next history sync. After the last page the
mirrored messages of the window Gmail no longer lists are deleted, and the ``historyId`` stored.
Every later sync reads ``history.list`` from the stored ``historyId``: messages added are read,
label changes and deletions applied. Gmail's ``404`` on a ``historyId`` it no longer holds means
a full resync of the window, leaving the mirror equal to the mailbox.

The messages of a page (``MESSAGES_PER_WRITE`` at most) are read at once and written in one
transaction, the rows held looked up, the new ones inserted and announced in one statement each,
while the next ones are read (the kit's ``PagedSync.read_pages``).

Every call spends the mailbox's quota units (``GmailGoogle.pace``), so one large mailbox never
runs past Gmail's per-user limit. A message that cannot be read whole is stored with what could
be read, and named in the sync health; it never stops the sync.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from gmail_service.google import GmailGoogle, GmailMessage, HistoryRecord
from gmail_service.mirror import MailboxScope, MailRules, MessageWriter, message_writer
from gmail_service.models import Mailbox, MirroredMessage
from gmail_service.repository import GmailRepository
from gmail_service.settings import GmailSettings
from pipedesk_common.google import GoogleUser
from pipedesk_common.google.resources import Page, SkippedItem
from pipedesk_common.messaging import raise_if_cancelling
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.paged import Listed, PagedSync, skip
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.mirror.work import SyncRun

log = logging.getLogger(__name__)

GmailRuntime = MirrorRuntime[GmailGoogle, GmailSettings]
PRODUCT: Final = "gmail"
# Messages written in one transaction: the next ones are read from Gmail meanwhile.
MESSAGES_PER_WRITE: Final = 25


def mailbox_key(org_id: str, user_id: str) -> SyncKey:
    """What a mailbox's sync is requested and coalesced as (one per mailbox)."""
    return SyncKey(PRODUCT, org_id, user_id)


async def scope_of(session: AsyncSession, mailbox: Mailbox) -> MailboxScope:
    settings = await GmailRepository(session).settings(mailbox.org_id)
    return MailboxScope(mailbox, MailRules.of(mailbox, settings))


class MailboxSync:
    def __init__(self, runtime: GmailRuntime) -> None:
        self.runtime = runtime
        self.google = runtime.google
        self.settings = runtime.settings
        self.clock = runtime.clock
        self.writer: MessageWriter = message_writer(runtime.clock)
        self.listing = PagedSync[GmailMessage](PRODUCT, runtime.uow)

    async def sync(self, org_id: str, user_id: str) -> Listed:
        async with self.runtime.uow.read() as session:
            mailbox = await GmailRepository(session).mailbox(org_id, user_id)
        if mailbox is None or not mailbox.connected:
            return Listed(full=False)
        start = mailbox.history_id
        return await self.listing.incremental_or_full(
            (lambda: self._history(mailbox, start)) if start is not None else None,
            lambda: self._window(mailbox),
        )

    async def _apply(self, session: AsyncSession, mailbox: Mailbox, item: GmailMessage) -> None:
        scope = await scope_of(session, mailbox)
        _report_partial(item, await self.writer.apply(session, scope, item, actor_id=None))

    async def _apply_all(
        self, session: AsyncSession, mailbox: Mailbox, items: list[GmailMessage]
    ) -> None:
        scope = await scope_of(session, mailbox)
        rows = await self.writer.apply_many(session, scope, items, actor_id=None)
        for item, row in zip(items, rows, strict=True):
            _report_partial(item, row)

    async def _written(
        self,
        mailbox: Mailbox,
        *,
        full: bool,
        pages: AsyncIterator[Page[GmailMessage]],
        finish: Callable[[AsyncSession, Page[GmailMessage]], Awaitable[None]],
    ) -> Listed:
        """The listing ``pages`` written into the mirror: a page's messages at once."""

        async def apply(session: AsyncSession, item: GmailMessage) -> None:
            await self._apply(session, mailbox, item)

        async def apply_all(session: AsyncSession, items: list[GmailMessage]) -> None:
            await self._apply_all(session, mailbox, items)

        return await self.listing.read_pages(
            full=full, pages=pages, apply=apply, finish=finish, apply_all=apply_all
        )

    async def _window(self, mailbox: Mailbox) -> Listed:
        """A full sync of the window (see the module docstring)."""
        user = mailbox.owner
        window_start = self.clock.now() - timedelta(days=self.settings.window_days)
        profile = await self.google.profile(user)
        watermark = profile.history_id
        query = f"after:{int(window_start.timestamp())}"
        seen: set[str] = set()

        async def pages() -> AsyncIterator[Page[GmailMessage]]:
            token: str | None = None
            while True:
                ids = await self.google.message_ids(user, query, token, self.settings.page_size)
                listed = [ref.id for ref in ids.items]
                seen.update(listed)
                for first in range(0, max(1, len(listed)), MESSAGES_PER_WRITE):
                    part = listed[first : first + MESSAGES_PER_WRITE]
                    read = await self.google.messages(user, part)
                    yield Page(items=read, skipped=ids.skipped if first == 0 else ())
                token = ids.next_page_token
                if not token:
                    return

        async def finish(session: AsyncSession, _last: Page[GmailMessage]) -> None:
            repository = GmailRepository(session)
            scope = await scope_of(session, mailbox)
            for stored in await repository.live_messages(mailbox.id, window_start):
                if stored.google_id not in seen:
                    await self.writer.apply(session, scope, gone_message(stored), actor_id=None)
            locked = await repository.mailbox(mailbox.org_id, mailbox.user_id, for_update=True)
            if locked is not None:
                locked.history_id = watermark
                locked.user_email = locked.user_email or profile.email_address.lower()
                locked.window_start = window_start
                locked.synced_at = locked.updated_at = self.clock.now()

        return await self._written(mailbox, full=True, pages=pages(), finish=finish)

    async def _history(self, mailbox: Mailbox, start: str) -> Listed:
        """The changes since ``start`` (see the module docstring)."""
        user = mailbox.owner
        newest = start

        async def pages() -> AsyncIterator[Page[GmailMessage]]:
            nonlocal newest
            token: str | None = None
            while True:
                records, newest = await self.google.history(
                    user, start, token, self.settings.page_size
                )
                changes = list(_changes(records.items).items())
                for first in range(0, len(changes), MESSAGES_PER_WRITE):
                    yield await self._read(user, changes[first : first + MESSAGES_PER_WRITE])
                token = records.next_page_token
                if not token:
                    return

        async def finish(session: AsyncSession, _last: Page[GmailMessage]) -> None:
            locked = await GmailRepository(session).mailbox(
                mailbox.org_id, mailbox.user_id, for_update=True
            )
            if locked is not None and locked.history_id == start:
                locked.history_id = newest
                locked.synced_at = locked.updated_at = self.clock.now()

        return await self._written(mailbox, full=False, pages=pages(), finish=finish)

    async def _read(
        self, user: GoogleUser, changes: list[tuple[str, GmailMessage | None]]
    ) -> Page[GmailMessage]:
        """Changes from history as a page to write: each message added read (unless gone
        since), the others as history told them."""
        added = [message_id for message_id, change in changes if change is None]
        read = {message.id: message for message in await self.google.messages(user, added)}
        items = [
            read.get(message_id) if change is None else change for message_id, change in changes
        ]
        return Page(items=[item for item in items if item is not None])


def _report_partial(item: GmailMessage, row: MirroredMessage | None) -> None:
    """A message stored with what could be read of it is named in the sync health."""
    if row is not None and row.problems and item.content() is not None:
        reason = "stored with what could be read: " + "; ".join(row.problems[:5])
        skip(PRODUCT, SkippedItem(id=item.id, reason=reason[:500], partial=True))


def gone_message(stored: MirroredMessage) -> GmailMessage:
    return GmailMessage.model_validate(
        {
            "id": stored.google_id,
            "threadId": stored.thread_id,
            "deleted": True,
            "historyId": f"{stored.etag}-gone",
        }
    )


def _changes(records: list[HistoryRecord]) -> OrderedDict[str, GmailMessage | None]:
    """What a page of history did to each message, in order: None for a message to read
    (added), else its new labels or its deletion."""
    changes: OrderedDict[str, GmailMessage | None] = OrderedDict()
    for record in records:
        for added in record.messages_added:
            changes[added.message.id] = None
        for changed in (*record.labels_added, *record.labels_removed):
            ref = changed.message
            if changes.get(ref.id, False) is None:
                continue  # it is read whole anyway
            labels = ref.label_ids if ref.label_ids is not None else _labels_of(record, ref.id)
            if labels is None:
                changes[ref.id] = None
                continue
            changes[ref.id] = GmailMessage.model_validate(
                {
                    "id": ref.id,
                    "threadId": ref.thread_id,
                    "labelIds": labels,
                    "historyId": record.id,
                }
            )
        for deleted in record.messages_deleted:
            ref = deleted.message
            changes.pop(ref.id, None)
            changes[ref.id] = GmailMessage.model_validate(
                {"id": ref.id, "threadId": ref.thread_id, "deleted": True, "historyId": record.id}
            )
    return changes


def _labels_of(record: HistoryRecord, message_id: str) -> list[str] | None:
    """The message's labels after the record, when Gmail said them."""
    for message in record.messages:
        if message.id == message_id and message.label_ids is not None:
            return message.label_ids
    return None


async def ensure_watch(runtime: GmailRuntime, mailbox: Mailbox) -> bool:
    """Watch the mailbox (again) on the configured topic; False when push is not configured."""
    topic = runtime.settings.pubsub_topic
    if topic is None:
        return False
    watched = await runtime.google.watch(mailbox.owner, topic)
    async with runtime.uow.write() as session:
        locked = await GmailRepository(session).mailbox(
            mailbox.org_id, mailbox.user_id, for_update=True
        )
        if locked is not None and locked.connected:
            locked.watch_renewed_at = runtime.clock.now()
            locked.watch_expires_at = watched.expires_at
    return True


def gmail_sync(runtime: GmailRuntime) -> SyncRun:
    """The kit's sync of one key: the mailbox it names; a mailbox not watched yet is watched
    once its sync is done."""
    settings = runtime.settings
    runtime.google.pace(runtime.clock, settings.quota_units_per_second, settings.quota_burst_units)
    sync = MailboxSync(runtime)

    async def run(key: SyncKey) -> None:
        await sync.sync(key.org_id, key.user_id)
        async with runtime.uow.read() as session:
            mailbox = await GmailRepository(session).mailbox(key.org_id, key.user_id)
        if mailbox is not None and mailbox.connected and mailbox.watch_renewed_at is None:
            try:
                await ensure_watch(runtime, mailbox)
            except Exception:  # the mail is synced; the renewal job tries the watch again
                raise_if_cancelling()
                log.warning("could not watch a mailbox", exc_info=True)

    return run
