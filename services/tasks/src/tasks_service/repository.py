"""Every query of the tasks service. Lists are looked up within their owner's org and user; tasks
within the caller's org, and what the caller may see of them is decided by the service."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, Table, delete, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from pipedesk_common.events.timeline import Link
from pipedesk_common.mirror.links import RecordLinks
from tasks_service.models import MirroredTask, TaskList, task_links

TASK_LINKS = RecordLinks(task_links, "task_id")
TASKS: Table = MirroredTask.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TaskFilters:
    list_id: UUID | None = None
    record: Link | None = None
    status: str | None = None
    due_min: date | None = None
    due_max: date | None = None
    assigned_by_me: bool = False
    include_hidden: bool = False
    include_deleted: bool = False


class TasksRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- task lists --------------------------------------------------------------------------

    async def insert_tasklist(self, values: dict[str, Any]) -> None:
        """Insert a list unless it is known (a concurrent poll may have inserted it)."""
        table: Table = TaskList.__table__  # type: ignore[attr-defined]
        await self.session.execute(
            insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["org_id", "user_id", "google_id"])
        )

    async def tasklist_by_google_id(
        self, org_id: str, user_id: str, google_id: str, *, for_update: bool = False
    ) -> TaskList | None:
        query = select(TaskList).where(
            col(TaskList.org_id) == org_id,
            col(TaskList.user_id) == user_id,
            col(TaskList.google_id) == google_id,
        )
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.scalars(query.execution_options(populate_existing=True))
        ).one_or_none()

    async def tasklist(
        self, org_id: str, user_id: str, list_id: UUID, *, for_update: bool = False
    ) -> TaskList | None:
        """One live list of one user."""
        query = select(TaskList).where(
            col(TaskList.id) == list_id,
            col(TaskList.org_id) == org_id,
            col(TaskList.user_id) == user_id,
            col(TaskList.deleted_at).is_(None),
        )
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.scalars(query.execution_options(populate_existing=True))
        ).one_or_none()

    async def tasklist_by_id(self, list_id: UUID) -> TaskList | None:
        return await self.session.get(TaskList, list_id, populate_existing=True)

    async def default_tasklist(self, org_id: str, user_id: str) -> TaskList | None:
        return (
            await self.session.scalars(
                select(TaskList).where(
                    col(TaskList.org_id) == org_id,
                    col(TaskList.user_id) == user_id,
                    col(TaskList.is_default).is_(True),
                    col(TaskList.deleted_at).is_(None),
                )
            )
        ).first()

    async def tasklists_of(
        self, org_id: str, user_id: str, *, include_deleted: bool = False
    ) -> list[TaskList]:
        query = select(TaskList).where(
            col(TaskList.org_id) == org_id, col(TaskList.user_id) == user_id
        )
        if not include_deleted:
            query = query.where(col(TaskList.deleted_at).is_(None))
        query = query.order_by(col(TaskList.is_default).desc(), col(TaskList.created_at))
        return list((await self.session.scalars(query)).all())

    async def restart_polls(self, org_id: str, user_id: str) -> bool:
        """Every live list of the user is read whole by its next poll; whether there are any."""
        restarted = await self.session.scalars(
            update(TaskList)
            .where(
                col(TaskList.org_id) == org_id,
                col(TaskList.user_id) == user_id,
                col(TaskList.deleted_at).is_(None),
            )
            .values(polled_through=None)
            .returning(col(TaskList.id))
        )
        return bool(restarted.all())

    async def polled_users(self) -> list[tuple[str, str]]:
        """Every (org, user) with a live list: whom the periodic poll visits."""
        rows = await self.session.execute(
            select(col(TaskList.org_id), col(TaskList.user_id))
            .where(col(TaskList.deleted_at).is_(None))
            .distinct()
        )
        return [(org_id, user_id) for org_id, user_id in rows]

    # --- tasks -------------------------------------------------------------------------------

    async def task(
        self, org_id: str, task_id: UUID, *, for_update: bool = False
    ) -> MirroredTask | None:
        """A task of the org that Google holds (a create in progress is not found)."""
        query = select(MirroredTask).where(
            col(MirroredTask.id) == task_id,
            col(MirroredTask.org_id) == org_id,
            col(MirroredTask.google_id).is_not(None),
        )
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.scalars(query.execution_options(populate_existing=True))
        ).one_or_none()

    async def any_task(self, task_id: UUID, *, for_update: bool = False) -> MirroredTask | None:
        """A task by id, a create in progress included."""
        query = select(MirroredTask).where(col(MirroredTask.id) == task_id)
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.scalars(query.execution_options(populate_existing=True))
        ).one_or_none()

    async def pending_tasks(self, tasklist_id: UUID) -> list[MirroredTask]:
        """Creates in progress in a list, oldest first (read, not locked)."""
        query = (
            select(MirroredTask)
            .where(
                col(MirroredTask.tasklist_id) == tasklist_id,
                col(MirroredTask.google_id).is_(None),
            )
            .order_by(col(MirroredTask.created_at))
        )
        return list((await self.session.scalars(query)).all())

    async def lock_if_free(self, task_id: UUID) -> MirroredTask | None:
        """The row, locked, or None while another transaction holds it (or it is gone)."""
        query = (
            select(MirroredTask)
            .where(col(MirroredTask.id) == task_id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).one_or_none()

    async def stale_pending(self, before: datetime, limit: int = 500) -> list[MirroredTask]:
        return list(
            (
                await self.session.scalars(
                    select(MirroredTask)
                    .where(
                        col(MirroredTask.google_id).is_(None),
                        col(MirroredTask.created_at) < before,
                        or_(
                            col(MirroredTask.creating_until).is_(None),
                            col(MirroredTask.creating_until) < before,
                        ),
                    )
                    .limit(limit)
                )
            ).all()
        )

    async def claim_pending(self, task_id: UUID, until: datetime, now: datetime) -> bool:
        """Take a create in progress (nobody holds it, or its holder's lease ran out)."""
        table = TASKS
        claimed = await self.session.scalar(
            update(table)
            .where(
                table.c.id == task_id,
                table.c.google_id.is_(None),
                or_(table.c.creating_until.is_(None), table.c.creating_until < now),
            )
            .values(creating_until=until)
            .returning(table.c.id)
        )
        return claimed is not None

    async def release_pending(self, task_id: UUID) -> None:
        table = TASKS
        await self.session.execute(
            update(table)
            .where(table.c.id == task_id, table.c.google_id.is_(None))
            .values(creating_until=None)
        )

    async def delete_task_row(self, task_id: UUID) -> None:
        await self.session.execute(delete(TASKS).where(TASKS.c.id == task_id))

    async def live_tasks(self, tasklist_id: UUID) -> list[MirroredTask]:
        """The list's mirrored tasks Google holds that are not deleted."""
        return list(
            (
                await self.session.scalars(
                    select(MirroredTask).where(
                        col(MirroredTask.tasklist_id) == tasklist_id,
                        col(MirroredTask.google_id).is_not(None),
                        col(MirroredTask.deleted).is_(False),
                    )
                )
            ).all()
        )

    async def mirrored_google_ids(self, tasklist_id: UUID) -> set[str]:
        rows = await self.session.scalars(
            select(col(MirroredTask.google_id)).where(
                col(MirroredTask.tasklist_id) == tasklist_id,
                col(MirroredTask.google_id).is_not(None),
            )
        )
        return {str(google_id) for google_id in rows}

    async def ids_by_google_id(
        self, tasklist_id: UUID, google_ids: Iterable[str]
    ) -> dict[str, UUID]:
        wanted = sorted(set(google_ids))
        if not wanted:
            return {}
        rows = await self.session.execute(
            select(col(MirroredTask.google_id), col(MirroredTask.id)).where(
                col(MirroredTask.tasklist_id) == tasklist_id,
                col(MirroredTask.google_id).in_(wanted),
            )
        )
        return {str(google_id): task_id for google_id, task_id in rows}

    def _listing(self, org_id: str, filters: TaskFilters) -> Select[Any]:
        query = select(MirroredTask).where(
            col(MirroredTask.org_id) == org_id, col(MirroredTask.google_id).is_not(None)
        )
        if filters.list_id is not None:
            query = query.where(col(MirroredTask.tasklist_id) == filters.list_id)
        if filters.status is not None:
            query = query.where(col(MirroredTask.status) == filters.status)
        if filters.due_min is not None:
            query = query.where(col(MirroredTask.due) >= filters.due_min)
        if filters.due_max is not None:
            query = query.where(col(MirroredTask.due) <= filters.due_max)
        # Google hides every task completed in its own apps: asking for completed tasks
        # includes them.
        if not filters.include_hidden and filters.status != "completed":
            query = query.where(col(MirroredTask.hidden).is_(False))
        if not filters.include_deleted:
            query = query.where(col(MirroredTask.deleted).is_(False))
        if filters.record is not None:
            query = query.where(TASK_LINKS.linked_to(col(MirroredTask.id), org_id, filters.record))
        return query

    async def list_tasks(
        self,
        org_id: str,
        filters: TaskFilters,
        *,
        user_id: str | None,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[MirroredTask]:
        """Tasks matching ``filters``, oldest first; ``user_id`` (when given) keeps the tasks
        that user holds, or assigned when ``filters.assigned_by_me``."""
        query = self._listing(org_id, filters)
        if user_id is not None:
            owner = (
                col(MirroredTask.assigned_by)
                if filters.assigned_by_me
                else col(MirroredTask.user_id)
            )
            query = query.where(owner == user_id)
        created = col(MirroredTask.created_at)
        if after is not None:
            query = query.where(tuple_(created, col(MirroredTask.id)) > tuple_(*after))
        query = query.order_by(created, col(MirroredTask.id)).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def descendants(self, task: MirroredTask) -> list[MirroredTask]:
        """The mirrored subtasks of ``task``, at any depth."""
        found: list[MirroredTask] = []
        parents = [task.google_id]
        while parents:
            children = list(
                (
                    await self.session.scalars(
                        select(MirroredTask)
                        .where(
                            col(MirroredTask.tasklist_id) == task.tasklist_id,
                            col(MirroredTask.parent_google_id).in_(parents),
                        )
                        .with_for_update()
                    )
                ).all()
            )
            found.extend(children)
            parents = [child.google_id for child in children if child.google_id]
        return found
