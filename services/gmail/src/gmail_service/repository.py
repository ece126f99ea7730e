"""Every query of the gmail service; each is scoped by the caller's org (and user)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gmail_service.models import Mailbox, MirroredMessage, OrgMailSettings
from pipedesk_common.ids import new_id


class GmailRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def mailbox(
        self, org_id: str, user_id: str, *, for_update: bool = False
    ) -> Mailbox | None:
        query = select(Mailbox).where(
            col(Mailbox.org_id) == org_id, col(Mailbox.user_id) == user_id
        )
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        found: Mailbox | None = (await self.session.scalars(query)).one_or_none()
        return found

    async def ensure_mailbox(self, org_id: str, user_id: str, now: datetime) -> Mailbox:
        """The user's mailbox row, locked; made (not connected) if missing, race-free."""
        table = Mailbox.__table__  # type: ignore[attr-defined]
        await self.session.execute(
            insert(table)
            .values(
                id=new_id(),
                org_id=org_id,
                user_id=user_id,
                blocklist=[],
                connected=False,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["org_id", "user_id"])
        )
        found = await self.mailbox(org_id, user_id, for_update=True)
        assert found is not None
        return found

    async def mailboxes_of_address(self, address: str) -> Sequence[Mailbox]:
        """The connected mailboxes of a Google address (one per org that connected it)."""
        rows = await self.session.scalars(
            select(Mailbox).where(
                col(Mailbox.user_email) == address.lower(), col(Mailbox.connected).is_(True)
            )
        )
        return rows.all()

    async def connected_mailboxes(self, org_id: str | None = None) -> Sequence[Mailbox]:
        query = select(Mailbox).where(col(Mailbox.connected).is_(True))
        if org_id is not None:
            query = query.where(col(Mailbox.org_id) == org_id)
        return (await self.session.scalars(query.order_by(col(Mailbox.id)))).all()

    async def watches_due(self, renewed_before: datetime) -> Sequence[Mailbox]:
        rows = await self.session.scalars(
            select(Mailbox)
            .where(
                col(Mailbox.connected).is_(True),
                (col(Mailbox.watch_renewed_at).is_(None))
                | (col(Mailbox.watch_renewed_at) < renewed_before),
            )
            .order_by(col(Mailbox.id))
        )
        return rows.all()

    async def settings(self, org_id: str, *, for_update: bool = False) -> OrgMailSettings | None:
        query = select(OrgMailSettings).where(col(OrgMailSettings.org_id) == org_id)
        if for_update:
            query = query.with_for_update()
        found: OrgMailSettings | None = (await self.session.scalars(query)).one_or_none()
        return found

    async def live_messages(
        self, mailbox_id: UUID, since: datetime | None = None
    ) -> Sequence[MirroredMessage]:
        query = select(MirroredMessage).where(
            col(MirroredMessage.mailbox_id) == mailbox_id, col(MirroredMessage.deleted).is_(False)
        )
        if since is not None:
            query = query.where(col(MirroredMessage.internal_date) >= since)
        return (await self.session.scalars(query.order_by(col(MirroredMessage.id)))).all()

    async def messages(
        self, mailbox_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> Sequence[MirroredMessage]:
        """A page of the mailbox's live messages, newest first (keyset on date and id)."""
        query = select(MirroredMessage).where(
            col(MirroredMessage.mailbox_id) == mailbox_id, col(MirroredMessage.deleted).is_(False)
        )
        if after is not None:
            when, ident = after
            query = query.where(
                (col(MirroredMessage.internal_date) < when)
                | ((col(MirroredMessage.internal_date) == when) & (col(MirroredMessage.id) < ident))
            )
        query = query.order_by(
            col(MirroredMessage.internal_date).desc(), col(MirroredMessage.id).desc()
        ).limit(limit)
        return (await self.session.scalars(query)).all()
