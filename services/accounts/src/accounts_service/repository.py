"""Every query of the accounts service; each is scoped by org (and user where it applies)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, Table, delete, select, union
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from accounts_service.models import GoogleConnection, GoogleDelegation, OAuthState, SyncHealth


class AccountsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def connection(
        self, org_id: str, user_id: str, *, for_update: bool = False
    ) -> GoogleConnection | None:
        query = select(GoogleConnection).where(
            col(GoogleConnection.org_id) == org_id, col(GoogleConnection.user_id) == user_id
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def connections(
        self, org_id: str, *, status: str | None, after: UUID | None, limit: int
    ) -> list[GoogleConnection]:
        """An org's connections, oldest first (ids are time-ordered), after a keyset position."""
        query = select(GoogleConnection).where(col(GoogleConnection.org_id) == org_id)
        if status is not None:
            query = query.where(col(GoogleConnection.status) == status)
        if after is not None:
            query = query.where(col(GoogleConnection.id) > after)
        query = query.order_by(col(GoogleConnection.id)).limit(limit)
        return list((await self.session.execute(query)).scalars().all())

    async def org_connections(self, org_id: str) -> list[GoogleConnection]:
        """Every connection of the org, locked (its offboarding)."""
        query = (
            select(GoogleConnection)
            .where(col(GoogleConnection.org_id) == org_id)
            .order_by(col(GoogleConnection.id))
            .with_for_update()
        )
        return list((await self.session.execute(query)).scalars().all())

    async def take_state(self, state_hash: str) -> OAuthState | None:
        """Delete and return a pending flow: a state is used once, whatever happens next."""
        row = (
            await self.session.execute(
                delete(OAuthState)
                .where(col(OAuthState.state_hash) == state_hash)
                .returning(OAuthState)
            )
        ).scalar_one_or_none()
        return row

    async def drop_expired_states(self, now: datetime) -> None:
        await self.session.execute(delete(OAuthState).where(col(OAuthState.expires_at) <= now))

    async def delegation(self, org_id: str) -> GoogleDelegation | None:
        return await self.session.get(GoogleDelegation, org_id)

    async def add(self, row: object) -> None:
        self.session.add(row)
        await self.session.flush()

    async def delete(self, row: object) -> None:
        await self.session.delete(row)
        await self.session.flush()

    # --- sync health (the replica) -----------------------------------------------------------

    async def store_health(self, row: dict[str, Any]) -> None:
        """Keep a published sync state unless a newer version is held."""
        table: Table = SyncHealth.__table__  # type: ignore[attr-defined]
        statement = insert(table).values(**row)
        keys = {"org_id", "user_id", "product"}
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=sorted(keys),
                set_={name: statement.excluded[name] for name in row if name not in keys},
                where=table.c.version < statement.excluded.version,
            )
        )

    async def health_of(self, org_id: str, user_ids: Sequence[str]) -> list[SyncHealth]:
        query = select(SyncHealth).where(
            col(SyncHealth.org_id) == org_id, col(SyncHealth.user_id).in_(user_ids)
        )
        return list((await self.session.execute(query)).scalars().all())

    async def connections_of(self, org_id: str, user_ids: Sequence[str]) -> list[GoogleConnection]:
        query = select(GoogleConnection).where(
            col(GoogleConnection.org_id) == org_id, col(GoogleConnection.user_id).in_(user_ids)
        )
        return list((await self.session.execute(query)).scalars().all())

    async def health_users(
        self, org_id: str, *, state: str | None, after: str | None, limit: int
    ) -> list[str]:
        """The org's users with a connection or a sync health, by id, after a keyset position;
        with ``state``: those with a product in that state."""
        synced: Select[tuple[str]] = select(col(SyncHealth.user_id).label("user_id")).where(
            col(SyncHealth.org_id) == org_id
        )
        if state is not None:
            users = synced.where(col(SyncHealth.state) == state).subquery()
        else:
            connected: Select[tuple[str]] = select(
                col(GoogleConnection.user_id).label("user_id")
            ).where(col(GoogleConnection.org_id) == org_id)
            users = union(synced, connected).subquery()
        query = select(users.c.user_id).distinct().order_by(users.c.user_id).limit(limit)
        if after is not None:
            query = query.where(users.c.user_id > after)
        return list((await self.session.execute(query)).scalars().all())
