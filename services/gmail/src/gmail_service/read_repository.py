"""The queries of reading mail: the mirrored copies of messages across an org's mailboxes, each
with its mailbox, scoped by the org."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gmail_service.models import Mailbox, MirroredMessage

CopyRow = tuple[MirroredMessage, Mailbox]


class MailReadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def copy(self, org_id: str, message_id: UUID) -> MirroredMessage | None:
        """One live mirrored message of the org, by our id."""
        found: MirroredMessage | None = (
            await self.session.scalars(
                select(MirroredMessage).where(
                    col(MirroredMessage.id) == message_id,
                    col(MirroredMessage.org_id) == org_id,
                    col(MirroredMessage.deleted).is_(False),
                )
            )
        ).one_or_none()
        return found

    async def copies(self, org_id: str, identities: Iterable[str]) -> Sequence[CopyRow]:
        """Every live copy of these messages (by ``Message-ID``) in the org's mailboxes."""
        wanted = sorted(set(identities))
        if not wanted:
            return []
        rows = await self.session.execute(
            select(MirroredMessage, Mailbox)
            .join(Mailbox, col(Mailbox.id) == col(MirroredMessage.mailbox_id))
            .where(
                col(MirroredMessage.org_id) == org_id,
                col(MirroredMessage.identity).in_(wanted),
                col(MirroredMessage.deleted).is_(False),
            )
            .order_by(col(MirroredMessage.id))
        )
        return [(row[0], row[1]) for row in rows]

    async def thread_identities(self, org_id: str, thread_id: str) -> list[str]:
        """The messages of a Gmail thread (Gmail's thread id, as any mailbox of the org knows
        it), by ``Message-ID``."""
        rows = await self.session.scalars(
            select(col(MirroredMessage.identity))
            .where(
                col(MirroredMessage.org_id) == org_id,
                col(MirroredMessage.thread_id) == thread_id,
                col(MirroredMessage.deleted).is_(False),
            )
            .distinct()
        )
        return list(rows.all())

    async def own_copies(
        self,
        org_id: str,
        user_id: str,
        *,
        thread_id: str | None = None,
        message: UUID | None = None,
    ) -> Sequence[MirroredMessage]:
        """The user's own live messages of a thread, or their own copy of a message (``message``:
        any copy's id), locked for a change of their links."""
        query = select(MirroredMessage).where(
            col(MirroredMessage.org_id) == org_id,
            col(MirroredMessage.user_id) == user_id,
            col(MirroredMessage.deleted).is_(False),
        )
        if thread_id is not None:
            query = query.where(col(MirroredMessage.thread_id) == thread_id)
        if message is not None:
            identity = (
                select(col(MirroredMessage.identity))
                .where(col(MirroredMessage.id) == message, col(MirroredMessage.org_id) == org_id)
                .scalar_subquery()
            )
            query = query.where(col(MirroredMessage.identity) == identity)
        query = query.order_by(col(MirroredMessage.id)).with_for_update()
        return (await self.session.scalars(query.execution_options(populate_existing=True))).all()

    async def mailbox_of(self, mailbox_id: UUID) -> Mailbox | None:
        return await self.session.get(Mailbox, mailbox_id)
