"""A local replica of CRM's access lists, for services that serve record-scoped data.

Kept current by CRM's ``crm.<type>.access_changed`` events; a record not heard of yet is fetched
once from CRM's ``/internal/acl/{type}/{id}`` (so an item linked to a lead created a moment ago
works), and every decision goes through the one ``can``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.auth import Principal, ServiceTokenIssuer
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.crm import AccessChanged, DealAccessChanged, LeadAccessChanged
from pipedesk_common.internal_calls import read_internal
from pipedesk_common.rbac import AccessList, Action, MemberRole, can

ACCESS_EVENTS: dict[str, type[AccessChanged]] = {
    "lead": LeadAccessChanged,
    "deal": DealAccessChanged,
}


def access_replica_table(metadata: MetaData) -> Table:
    return Table(
        "access_replica",
        metadata,
        Column("record_type", String(20), nullable=False),
        Column("record_id", String(64), nullable=False),
        Column("org_id", String(255), nullable=False),
        Column("owner_id", String(255), nullable=True),
        Column("team_id", String(255), nullable=True),
        Column("members", JSONB, nullable=False),
        Column("deleted", Boolean, nullable=False),
        Column("version", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("record_type", "record_id"),
    )


@dataclass(frozen=True)
class AccessCause:
    """The CRM change that produced an access list: its audit entry and who made it."""

    audit_id: str | None
    actor_id: str | None


class AccessStored(Protocol):
    """Called as ``on_stored(session, org_id, record_type, record_id, cause)``; ``cause`` is
    None when the list was fetched from CRM rather than received with its change."""

    def __call__(
        self,
        session: AsyncSession,
        org_id: str,
        record_type: str,
        record_id: str,
        cause: AccessCause | None = None,
    ) -> Awaitable[None]: ...


class AccessReplica:
    """``on_stored(session, org_id, record_type, record_id, cause)``, when given, runs in the
    same transaction each time the replica learns a record or a newer version of its access
    list (``cause``: the CRM change that produced it, when it came as an event)."""

    def __init__(
        self,
        table: Table,
        *,
        crm_url: str,
        http: Callable[[], httpx.AsyncClient],
        issuer: Callable[[], ServiceTokenIssuer],
        on_stored: AccessStored | None = None,
    ) -> None:
        self.table = table
        self.crm_url = crm_url.rstrip("/")
        self._http = http
        self._issuer = issuer
        self._on_stored = on_stored

    def subscribe(self, consumer: Consumer) -> None:
        """Keep this replica current from the consumer's queue."""
        for record_type, model in ACCESS_EVENTS.items():

            async def on_access_changed(
                session: AsyncSession, event: Event[AccessChanged], record_type: str = record_type
            ) -> None:
                data = event.data
                cause = AccessCause(data.audit_id, event.actor_id)
                await self._store(session, record_type, data.id, data.model_dump(), cause)

            consumer.on(model)(on_access_changed)

    async def _store(
        self,
        session: AsyncSession,
        record_type: str,
        record_id: str,
        values: dict[str, Any],
        cause: AccessCause | None = None,
    ) -> None:
        row = {
            "record_type": record_type,
            "record_id": record_id,
            "org_id": values["org_id"],
            "owner_id": values["owner_id"],
            "team_id": values["team_id"],
            "members": values.get("members", {}),
            "deleted": values.get("deleted", False),
            "version": values["version"],
        }
        statement = insert(self.table).values(**row)
        stored = await session.scalar(
            statement.on_conflict_do_update(
                index_elements=["record_type", "record_id"],
                set_={
                    **{
                        k: statement.excluded[k]
                        for k in row
                        if k not in {"record_type", "record_id"}
                    },
                    "updated_at": func.now(),
                },
                where=self.table.c.version < statement.excluded.version,
            ).returning(self.table.c.version)
        )
        if stored is not None and self._on_stored is not None:
            await self._on_stored(session, row["org_id"], record_type, record_id, cause)

    async def access_list(
        self, session: AsyncSession, record_type: str, record_id: str
    ) -> AccessList | None:
        """The record's access list, or None if it does not exist or is deleted."""
        row = (
            await session.execute(
                select(self.table).where(
                    self.table.c.record_type == record_type, self.table.c.record_id == record_id
                )
            )
        ).one_or_none()
        values: dict[str, Any] | None = dict(row._mapping) if row is not None else None
        if values is None:
            values = await self._fetch(record_type, record_id)
            if values is None:
                return None
            await self._store(session, record_type, record_id, values)
        if values["deleted"]:
            return None
        return AccessList(
            org_id=values["org_id"],
            owner_id=values["owner_id"],
            team_id=values["team_id"],
            members={user: MemberRole(role) for user, role in values["members"].items()},
        )

    async def can(
        self,
        session: AsyncSession,
        principal: Principal,
        action: Action,
        record_type: str,
        record_id: str,
    ) -> bool:
        access = await self.access_list(session, record_type, record_id)
        return access is not None and can(principal, action, access)

    async def _fetch(self, record_type: str, record_id: str) -> dict[str, Any] | None:
        document: dict[str, Any] | None = await read_internal(
            self._http(),
            self._issuer(),
            "crm",
            f"{self.crm_url}/internal/acl/{record_type}/{record_id}",
            what="access rules",
        )
        return document
