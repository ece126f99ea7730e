"""Tasks domain logic.

Access (role, then every linked CRM record through the access replica, then the assignee) is
decided before any Google call. No transaction is held open across a Google call: each step is a
unit of work of its own (``uow.read()``, ``uow.write()``), and what Google answered is applied to
the mirror — and its event written to the outbox — in one transaction. Every write asks for a poll
of the owner's lists at once, to pick up what Google changed besides (siblings, subtasks).

Creating: Google Tasks takes no ids from clients, so the task row is written *before* Google is
asked (without a Google id, holding a short lease) and the ``Idempotency-Key`` remembers that row.
A retry finds it: done → the same task; still pending (the first attempt died, before or after
Google's answer) → Google's tasks changed since are searched for it (same title, notes, due and
parent) and adopted, or, not found, it is created now. The poll adopts such a task the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.auth import Principal
from pipedesk_common.clock import Clock
from pipedesk_common.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    invalid,
    not_found,
)
from pipedesk_common.google import GoogleNotConnected, GoogleReconnectRequired, GoogleUser
from pipedesk_common.idempotency import fingerprint, owned_scope
from pipedesk_common.ids import new_id
from pipedesk_common.mirror.links import check_links, hidden_links, replaced_links
from pipedesk_common.mirror.runtime import google_user, require_role
from pipedesk_common.rbac import Action
from tasks_service.google import DEFAULT_LIST, GoogleTask, GoogleTaskList
from tasks_service.mirror import (
    TaskWriter,
    apply_task,
    apply_tasklist,
    mark_deleted,
    public,
    public_list,
)
from tasks_service.models import MirroredTask, TaskList
from tasks_service.repository import TASK_LINKS, TaskFilters, TasksRepository
from tasks_service.schemas import (
    TaskCreate,
    TaskListPublic,
    TaskMove,
    TaskPublic,
    TaskUpdate,
)
from tasks_service.sync import TasksPoll, TasksRuntime, delete_tasklist, poll_key

NOUN = "tasks"


def google_due(value: date | None) -> str | None:
    """Google Tasks' due: the date at midnight UTC (it keeps no time of day)."""
    return f"{value.isoformat()}T00:00:00.000Z" if value is not None else None


async def record_created(
    session: AsyncSession,
    writer: TaskWriter,
    tasklist: TaskList,
    resource: GoogleTask,
    task_id: UUID,
    *,
    actor_id: str | None,
) -> MirroredTask:
    """Give the create in progress ``task_id`` the task Google created (announcing it)."""
    pending = await TasksRepository(session).any_task(task_id, for_update=True)
    task = await apply_task(session, writer, tasklist, resource, actor_id=actor_id, pending=pending)
    if task is None:
        raise NotFound("the task was deleted in Google before it could be recorded")
    return task


class TasksService:
    def __init__(self, runtime: TasksRuntime) -> None:
        self.runtime = runtime
        self.uow = runtime.uow
        self.google = runtime.google
        self.clock: Clock = runtime.clock
        self.poll = TasksPoll.of(runtime)
        self.writer = self.poll.writer
        self.create_lease = timedelta(seconds=runtime.settings.create_lease_seconds)

    async def _poll_soon(self, org_id: str, user_id: str) -> None:
        async with self.uow.write() as session:
            await self.runtime.work.request(session, poll_key(org_id, user_id))

    # --- access ------------------------------------------------------------------------------

    async def _can_read(
        self, session: AsyncSession, principal: Principal, task: MirroredTask
    ) -> bool:
        """The owner, whoever assigned it, and whoever may read a record it is linked to."""
        if principal.sub in {task.user_id, task.assigned_by}:
            return True
        links = (await TASK_LINKS.of(session, [task.id]))[task.id]
        replica = self.runtime.replica
        for link in links:
            if await replica.can(session, principal, Action.READ, link.type, link.id):
                return True
        return False

    async def _readable(
        self, session: AsyncSession, principal: Principal, task_id: UUID
    ) -> tuple[MirroredTask, TaskList]:
        repository = TasksRepository(session)
        task = await repository.task(principal.org_id, task_id)
        if task is None or not await self._can_read(session, principal, task):
            raise NotFound("no such task")
        tasklist = await repository.tasklist_by_id(task.tasklist_id)
        assert tasklist is not None
        return task, tasklist

    async def _changeable(
        self, session: AsyncSession, principal: Principal, task_id: UUID, action: Action
    ) -> tuple[MirroredTask, TaskList]:
        """A live task the caller holds or assigned (others who can read it get 403)."""
        task, tasklist = await self._readable(session, principal, task_id)
        if task.deleted:
            raise NotFound("this task is deleted")
        self._may_change(principal, task, action)
        return task, tasklist

    @staticmethod
    def _may_change(principal: Principal, task: MirroredTask, action: Action) -> None:
        require_role(principal, action, NOUN)
        if principal.sub not in {task.user_id, task.assigned_by}:
            raise Forbidden("only the task's assignee and whoever assigned it may change it")

    async def _own_list(self, principal: Principal, list_id: UUID, field: str) -> TaskList:
        async with self.uow.read() as session:
            tasklist = await TasksRepository(session).tasklist(
                principal.org_id, principal.sub, list_id
            )
        if tasklist is None:
            raise not_found(field, "task list")
        return tasklist

    async def _default_list(self, owner: GoogleUser) -> TaskList:
        """The owner's default list, mirrored (asked of Google the first time)."""
        async with self.uow.read() as session:
            known = await TasksRepository(session).default_tasklist(owner.org_id, owner.user_id)
        if known is not None:
            return known
        resource = await self.google.tasklist(owner, DEFAULT_LIST)
        async with self.uow.write() as session:
            return await apply_tasklist(
                session,
                self.clock,
                (owner.org_id, owner.user_id, owner.email),
                resource,
                is_default=True,
            )

    async def _publics(
        self, session: AsyncSession, principal: Principal, tasks: Sequence[MirroredTask]
    ) -> list[TaskPublic]:
        repository = TasksRepository(session)
        links = await TASK_LINKS.of(session, [task.id for task in tasks])
        parents: dict[tuple[UUID, str], UUID] = {}
        by_list: dict[UUID, set[str]] = {}
        for task in tasks:
            if task.parent_google_id:
                by_list.setdefault(task.tasklist_id, set()).add(task.parent_google_id)
        for list_id, google_ids in by_list.items():
            for google_id, task_id in (
                await repository.ids_by_google_id(list_id, google_ids)
            ).items():
                parents[(list_id, google_id)] = task_id
        replica = self.runtime.replica
        return [
            public(
                task,
                links[task.id],
                parents.get((task.tasklist_id, task.parent_google_id))
                if task.parent_google_id
                else None,
                await hidden_links(replica, session, principal, links[task.id]),
            )
            for task in tasks
        ]

    async def _public(
        self, session: AsyncSession, principal: Principal, task: MirroredTask
    ) -> TaskPublic:
        return (await self._publics(session, principal, [task]))[0]

    # --- task lists --------------------------------------------------------------------------

    async def lists(self, principal: Principal) -> list[TaskListPublic]:
        """The caller's lists as Google has them now (mirrored on the way)."""
        user = google_user(principal)
        await self._default_list(user)
        async with self.uow.read() as session:
            known = await TasksRepository(session).tasklists_of(principal.org_id, principal.sub)
        live = await self.poll.sync_lists(user, known)
        # The default list first, then as Google lists them.
        return [public_list(tasklist) for tasklist in sorted(live, key=lambda t: not t.is_default)]

    async def get_list(self, principal: Principal, list_id: UUID) -> TaskListPublic:
        async with self.uow.read() as session:
            tasklist = await TasksRepository(session).tasklist(
                principal.org_id, principal.sub, list_id
            )
        if tasklist is None:
            raise NotFound("no such task list")
        return public_list(tasklist)

    async def create_list(self, principal: Principal, title: str) -> TaskListPublic:
        require_role(principal, Action.CREATE, NOUN)
        user = google_user(principal)
        await self._default_list(user)  # the poll then knows the user
        started = self.clock.now()

        async def made_before() -> GoogleTaskList | None:
            return await self.poll.find_list_in_google(user, title, since=started)

        resource = await self.google.insert_tasklist(user, title, reconcile=made_before)
        async with self.uow.write() as session:
            owner = (principal.org_id, principal.sub, principal.email)
            tasklist = await apply_tasklist(session, self.clock, owner, resource, is_default=False)
            return public_list(tasklist)

    async def rename_list(self, principal: Principal, list_id: UUID, title: str) -> TaskListPublic:
        require_role(principal, Action.UPDATE, NOUN)
        tasklist = await self._own_list(principal, list_id, "list_id")
        resource = await self.google.rename_tasklist(
            google_user(principal), tasklist.google_id, title
        )
        async with self.uow.write() as session:
            owner = (principal.org_id, principal.sub, principal.email)
            return public_list(await apply_tasklist(session, self.clock, owner, resource))

    async def delete_list(self, principal: Principal, list_id: UUID) -> None:
        require_role(principal, Action.DELETE, NOUN)
        tasklist = await self._own_list(principal, list_id, "list_id")
        if tasklist.is_default:
            raise InvalidInput(
                "the default task list cannot be deleted",
                errors=[
                    FieldError(field="path.list_id", message="the default list", code="default")
                ],
            )
        await self.google.delete_tasklist(google_user(principal), tasklist.google_id)
        async with self.uow.write() as session:
            await delete_tasklist(session, self.writer, tasklist, actor_id=principal.sub)

    async def clear_completed(self, principal: Principal, list_id: UUID) -> None:
        """Hide the list's completed tasks (Google's "clear completed"); the poll run at once
        mirrors which ones Google hid."""
        require_role(principal, Action.UPDATE, NOUN)
        tasklist = await self._own_list(principal, list_id, "list_id")
        await self.google.clear(google_user(principal), tasklist.google_id)
        await self._poll_soon(principal.org_id, principal.sub)

    # --- creating ----------------------------------------------------------------------------

    async def create(
        self, principal: Principal, data: TaskCreate, idempotency_key: str | None
    ) -> tuple[TaskPublic, bool]:
        """The task, and whether this request created it (False: a replayed request)."""
        require_role(principal, Action.CREATE, NOUN)
        if not data.title:
            raise invalid("title", "required", "missing")
        scope = owned_scope("tasks.tasks.create", principal.org_id, principal.sub)
        digest = fingerprint(data.model_dump(mode="json"))
        idempotency = self.runtime.idempotency
        if idempotency_key is not None:
            async with self.uow.write() as session:
                answered = await idempotency.replay(session, scope, idempotency_key, digest)
            if answered is not None:
                return await self._resume(principal, UUID(answered.body["id"])), False
        async with self.uow.write() as session:
            links = await check_links(
                self.runtime.replica, session, principal, data.links or [], noun=NOUN
            )
        owner = await self._owner(principal, data)
        tasklist = (
            await self._own_list(principal, data.list_id, "list_id")
            if data.list_id is not None
            else await self._default_list(owner)
        )
        parent, previous = await self._placement(
            principal, tasklist, data.parent_id, data.previous_id, moving=None
        )
        now = self.clock.now()
        task = MirroredTask(
            id=new_id(),
            org_id=principal.org_id,
            user_id=owner.user_id,
            tasklist_id=tasklist.id,
            parent_google_id=parent,
            title=data.title,
            notes=data.notes,
            status=data.status or "needsAction",
            due=data.due_date(),
            assigned_by=principal.sub if owner.user_id != principal.sub else None,
            creating_until=now + self.create_lease,
            resource={},
            created_at=now,
            updated_at=now,
        )
        async with self.uow.write() as session:
            if idempotency_key is not None:
                await idempotency.remember(
                    session, scope, idempotency_key, digest, status=201, body={"id": str(task.id)}
                )
                first = await idempotency.replay(session, scope, idempotency_key, digest)
                assert first is not None
                twin = UUID(first.body["id"])
            else:
                twin = task.id
            if twin == task.id:
                session.add(task)
                await session.flush()
                await TASK_LINKS.replace(session, task.id, task.org_id, links)
        if twin != task.id:  # a concurrent request with the same key recorded its task first
            return await self._resume(principal, twin), False
        created = await self._create_in_google(principal, task, tasklist, previous=previous)
        return created, True

    async def _owner(self, principal: Principal, data: TaskCreate) -> GoogleUser:
        """Whose Google Tasks get the task: the caller, or a user of the caller's org (found in
        the CRM directory, which gives their email) who connected Google Tasks."""
        if data.assignee_id is None or data.assignee_id == principal.sub:
            return google_user(principal)
        if data.list_id is not None:
            raise invalid("list_id", "an assigned task goes to the assignee's default list")
        unknown = invalid(
            "assignee_id",
            "not a user of your organisation with Google Tasks connected",
            "unknown_assignee",
        )
        member = await self.runtime.directory.user(principal.org_id, data.assignee_id)
        if member is None:
            raise unknown
        assignee = GoogleUser(org_id=principal.org_id, user_id=member.id, email=member.email)
        try:
            await self.google.check_connected(assignee)
        except (GoogleNotConnected, GoogleReconnectRequired):
            raise unknown from None
        return assignee

    async def _placement(
        self,
        principal: Principal,
        tasklist: TaskList,
        parent_id: UUID | None,
        previous_id: UUID | None,
        *,
        moving: MirroredTask | None,
    ) -> tuple[str | None, str | None]:
        """Google's ids of a parent and a previous sibling, both live tasks of ``tasklist``."""
        found: list[str | None] = []
        async with self.uow.read() as session:
            repository = TasksRepository(session)
            for field, task_id in (("parent_id", parent_id), ("previous_id", previous_id)):
                if task_id is None:
                    found.append(None)
                    continue
                task = await repository.task(principal.org_id, task_id)
                if task is None or task.tasklist_id != tasklist.id or task.deleted:
                    raise not_found(field, "task in this list")
                if moving is not None and task.id == moving.id:
                    raise invalid(field, "a task cannot be placed relative to itself")
                found.append(task.google_id)
            if parent_id is not None and previous_id is not None:
                previous = await repository.task(principal.org_id, previous_id)
                assert previous is not None
                if previous.parent_google_id != found[0]:
                    raise invalid("previous_id", "not a subtask of parent_id")
        return found[0], found[1]

    @staticmethod
    def _google_body(task: MirroredTask) -> dict[str, Any]:
        body: dict[str, Any] = {"title": task.title, "status": task.status}
        if task.notes is not None:
            body["notes"] = task.notes
        if task.due is not None:
            body["due"] = google_due(task.due)
        return body

    async def _create_in_google(
        self,
        principal: Principal,
        task: MirroredTask,
        tasklist: TaskList,
        *,
        previous: str | None,
    ) -> TaskPublic:
        """Create the pending ``task`` (whose lease this request holds) in Google, record it."""

        async def made_before() -> GoogleTask | None:
            """What an insert whose answer was lost made: the task a poll gave this create
            meanwhile, or the task in Google with its content (Google keeps no field of ours,
            so the content we wrote and the time are the marker)."""

            async def adopted() -> GoogleTask | None:
                async with self.uow.read() as session:
                    current = await TasksRepository(session).any_task(task.id)
                if current is not None and current.google_id is not None:
                    return GoogleTask.model_validate(current.resource)
                return None

            # Read before and after the search: a poll adopting it meanwhile is seen either way.
            return (
                await adopted() or await self.poll.find_in_google(tasklist, task) or await adopted()
            )

        try:
            resource = await self.google.insert(
                tasklist.owner,
                tasklist.google_id,
                self._google_body(task),
                parent=task.parent_google_id,
                previous=previous,
                reconcile=made_before,
            )
            return await self._recorded(principal, tasklist, resource, task.id)
        except Exception:
            async with self.uow.write() as session:
                await TasksRepository(session).release_pending(task.id)
            raise

    async def _recorded(
        self, principal: Principal, tasklist: TaskList, resource: GoogleTask, task_id: UUID
    ) -> TaskPublic:
        async with self.uow.write() as session:
            task = await record_created(
                session, self.writer, tasklist, resource, task_id, actor_id=principal.sub
            )
            answer = await self._public(session, principal, task)
        await self._poll_soon(tasklist.org_id, tasklist.user_id)
        return answer

    async def _resume(self, principal: Principal, task_id: UUID) -> TaskPublic:
        """The answer to a retried create: its task, finishing the create if it never was."""
        async with self.uow.read() as session:
            task = await TasksRepository(session).any_task(task_id)
            if task is not None and task.google_id is not None:
                return await self._public(session, principal, task)
        if task is None:
            raise NotFound("the task this Idempotency-Key created no longer exists")
        now = self.clock.now()
        async with self.uow.write() as session:
            repository = TasksRepository(session)
            claimed = await repository.claim_pending(task_id, now + self.create_lease, now)
            tasklist = await repository.tasklist_by_id(task.tasklist_id)
        if not claimed:
            raise Conflict(
                "a request with this Idempotency-Key is creating the task; retry shortly",
                headers={"Retry-After": "5"},
            )
        assert tasklist is not None
        try:
            found = await self.poll.find_in_google(tasklist, task)
        except Exception:
            async with self.uow.write() as session:
                await TasksRepository(session).release_pending(task_id)
            raise
        if found is not None:
            return await self._recorded(principal, tasklist, found, task_id)
        return await self._create_in_google(principal, task, tasklist, previous=None)

    # --- reading -----------------------------------------------------------------------------

    async def get(self, principal: Principal, task_id: UUID) -> TaskPublic:
        async with self.uow.read() as session:
            task, _tasklist = await self._readable(session, principal, task_id)
            return await self._public(session, principal, task)

    async def list_tasks(
        self,
        principal: Principal,
        filters: TaskFilters,
        *,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[TaskPublic]:
        """By record: every task of the org linked to a record the caller may read. Otherwise
        the caller's own tasks (or those they assigned)."""
        async with self.uow.write() as session:
            if filters.record is not None:
                record = filters.record
                replica = self.runtime.replica
                if not await replica.can(session, principal, Action.READ, record.type, record.id):
                    raise NotFound(f"no such {record.type}")
            if filters.list_id is not None:
                own = await TasksRepository(session).tasklist(
                    principal.org_id, principal.sub, filters.list_id
                )
                if own is None:
                    raise not_found("list_id", "task list", location="query")
            tasks = await TasksRepository(session).list_tasks(
                principal.org_id,
                filters,
                user_id=None if filters.record is not None else principal.sub,
                after=after,
                limit=limit,
            )
            return await self._publics(session, principal, tasks)

    # --- changing ----------------------------------------------------------------------------

    async def update(self, principal: Principal, task_id: UUID, data: TaskUpdate) -> TaskPublic:
        async with self.uow.write() as session:
            task, tasklist = await self._changeable(session, principal, task_id, Action.UPDATE)
            links = (
                await replaced_links(
                    self.runtime.replica,
                    session,
                    principal,
                    (await TASK_LINKS.of(session, [task.id]))[task.id],
                    data.links,
                    noun=NOUN,
                )
                if data.links is not None
                else None
            )
        sent = data.model_fields_set
        body: dict[str, Any] = {}
        if "title" in sent:
            if not data.title:
                raise invalid("title", "cannot be empty")
            body["title"] = data.title
        if "notes" in sent:
            body["notes"] = data.notes
        if "due" in sent:
            body["due"] = google_due(data.due_date())
        if data.status == "completed":
            body["status"] = "completed"
        elif data.status == "needsAction":
            body.update(status="needsAction", completed=None)
        resource = GoogleTask.model_validate(task.resource)
        if body:
            assert task.google_id is not None
            resource = await self.google.patch(
                tasklist.owner, tasklist.google_id, task.google_id, body
            )
        async with self.uow.write() as session:
            applied = await apply_task(
                session, self.writer, tasklist, resource, actor_id=principal.sub, links=links
            )
            assert applied is not None
            answer = await self._public(session, principal, applied)
        await self._poll_soon(tasklist.org_id, tasklist.user_id)
        return answer

    async def move(self, principal: Principal, task_id: UUID, data: TaskMove) -> TaskPublic:
        async with self.uow.write() as session:
            task, tasklist = await self._changeable(session, principal, task_id, Action.UPDATE)
        parent, previous = await self._placement(
            principal, tasklist, data.parent_id, data.previous_id, moving=task
        )
        assert task.google_id is not None
        resource = await self.google.move(
            tasklist.owner, tasklist.google_id, task.google_id, parent=parent, previous=previous
        )
        async with self.uow.write() as session:
            applied = await apply_task(
                session, self.writer, tasklist, resource, actor_id=principal.sub
            )
            assert applied is not None
            # Google renumbers the siblings without marking them changed: read the list whole.
            locked = await TasksRepository(session).tasklist_by_id(tasklist.id)
            if locked is not None:
                locked.polled_through = None
            answer = await self._public(session, principal, applied)
        await self._poll_soon(tasklist.org_id, tasklist.user_id)
        return answer

    async def delete(self, principal: Principal, task_id: UUID) -> None:
        """Delete a task and its subtasks (in Google and the mirror); deleted stays deleted."""
        async with self.uow.write() as session:
            task, tasklist = await self._readable(session, principal, task_id)
            self._may_change(principal, task, Action.DELETE)
            if task.deleted:
                return
        assert task.google_id is not None
        await self.google.delete(tasklist.owner, tasklist.google_id, task.google_id)
        async with self.uow.write() as session:
            repository = TasksRepository(session)
            locked = await repository.task(principal.org_id, task_id, for_update=True)
            assert locked is not None  # a task's row is never removed once Google holds it
            for doomed in [locked, *await repository.descendants(locked)]:
                await mark_deleted(session, self.writer, tasklist, doomed, actor_id=principal.sub)
        await self._poll_soon(tasklist.org_id, tasklist.user_id)
