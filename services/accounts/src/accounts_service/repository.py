"""Every query of the accounts service; each is scoped by org (and user where it applies)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from accounts_service.models import GoogleConnection, GoogleDelegation, OAuthState


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
