"""Reading the audit log: the filtered, cursor-paged query and the streamed CSV export.

Admins read their whole org's log; managers the entries of the leads and deals of their teams;
everyone else is refused. The export reads through a server-side cursor, so its memory does not
grow with the number of rows.
"""

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, cast, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from crm_service.models import AuditEntry, Deal, Lead
from pipedesk_common.auth import Principal, Role
from pipedesk_common.errors import Forbidden

EXPORT_COLUMNS = (
    "id", "occurred_at", "entity_type", "entity_id", "action", "actor_id", "reason",
    "request_id", "source", "file_id", "file_name", "caused_by", "changes",
)  # fmt: skip
EXPORT_SOURCE_COLUMNS = (
    "id", "occurred_at", "record_type", "record_id", "action", "actor_id", "reason",
    "request_id", "source", "file_id", "file_name", "caused_by", "changes",
)  # fmt: skip
EXPORT_BATCH = 1000
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditFilters:
    entity_type: str | None = None
    entity_id: str | None = None
    actor_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _team_records(principal: Principal) -> ColumnElement[bool]:
    teams = sorted(principal.team_ids)
    leads = select(cast(col(Lead.id), String)).where(
        col(Lead.org_id) == principal.org_id, col(Lead.team_id).in_(teams)
    )
    deals = select(cast(col(Deal.id), String)).where(
        col(Deal.org_id) == principal.org_id, col(Deal.team_id).in_(teams)
    )
    record_type, record_id = col(AuditEntry.record_type), col(AuditEntry.record_id)
    return or_(
        and_(record_type == "lead", record_id.in_(leads)),
        and_(record_type == "deal", record_id.in_(deals)),
    )


def audit_query(principal: Principal, filters: AuditFilters) -> Select[Any]:
    """The entries ``principal`` may read that match ``filters``, newest first."""
    if principal.role not in {Role.ADMIN, Role.MANAGER}:
        raise Forbidden("the audit log is for admins and managers")
    query = select(AuditEntry).where(col(AuditEntry.org_id) == principal.org_id)
    if principal.role is Role.MANAGER:
        query = query.where(_team_records(principal))
    if filters.entity_type is not None:
        query = query.where(col(AuditEntry.record_type) == filters.entity_type)
    if filters.entity_id is not None:
        query = query.where(col(AuditEntry.record_id) == filters.entity_id)
    if filters.actor_id is not None:
        query = query.where(col(AuditEntry.actor_id) == filters.actor_id)
    if filters.action is not None:
        query = query.where(col(AuditEntry.action) == filters.action)
    if filters.since is not None:
        query = query.where(col(AuditEntry.occurred_at) >= filters.since)
    if filters.until is not None:
        query = query.where(col(AuditEntry.occurred_at) < filters.until)
    return query.order_by(col(AuditEntry.occurred_at).desc(), col(AuditEntry.id).desc())


async def audit_page(
    session: AsyncSession,
    principal: Principal,
    filters: AuditFilters,
    *,
    after: Sequence[Any] | None,
    limit: int,
) -> list[AuditEntry]:
    query = audit_query(principal, filters)
    if after is not None:
        query = query.where(
            tuple_(col(AuditEntry.occurred_at), col(AuditEntry.id)) < tuple_(*after)
        )
    return list((await session.scalars(query.limit(limit))).all())


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


async def export_csv(engine: AsyncEngine, query: Select[Any]) -> AsyncIterator[bytes]:
    """The rows of ``query`` as CSV, read in batches through a server-side cursor."""
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    rows_query = query.with_only_columns(*(table.c[name] for name in EXPORT_SOURCE_COLUMNS))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    yield buffer.getvalue().encode()
    async with engine.connect() as connection:
        result = await connection.stream(rows_query.execution_options(yield_per=EXPORT_BATCH))
        async for batch in result.partitions(EXPORT_BATCH):
            buffer.seek(0)
            buffer.truncate()
            for row in batch:
                entry_id, occurred_at, *middle, changes = row
                writer.writerow(
                    [
                        entry_id,
                        occurred_at.isoformat(),
                        *(_cell(value) for value in middle),
                        _cell(json.dumps(changes, ensure_ascii=False, separators=(",", ":"))),
                    ]
                )
            yield buffer.getvalue().encode()
