"""Tasks routes: parse, authorize (through the service), answer. (The org settings' routes are
the kit's, in this service's shapes.)"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from pipedesk_common.app import ContextDep, PrincipalDep, provided
from pipedesk_common.errors import (
    Conflict,
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.idempotency import IdempotencyKeyReused
from pipedesk_common.idempotent import IDEMPOTENCY_PROBLEMS, IDEMPOTENT
from pipedesk_common.mirror.links import RecordFilterDep
from pipedesk_common.mirror.routes import (
    GOOGLE_PROBLEMS,
    IdempotencyKeyDep,
    answer_created,
    org_settings_routes,
)
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.moments import IsoDate
from pipedesk_common.pagination import Page, PageCursor, PageLimit
from tasks_service.models import OrgTasksSettings
from tasks_service.repository import TaskFilters
from tasks_service.schemas import (
    TaskCreate,
    TaskListPublic,
    TaskListWrite,
    TaskMove,
    TaskPublic,
    TaskSettingsPublic,
    TaskSettingsWrite,
    TaskStatus,
    TaskUpdate,
)
from tasks_service.service import TasksService
from tasks_service.sync import TasksRuntime

router = APIRouter(prefix="/api/tasks", tags=["tasks"])

MAX_PAGE = 100
ALIAS_NOTE = (
    "Accepts aliases (`title`|`name`, `notes`|`description`, `due`|`due_date`); two names of "
    "one field in one payload answer 422 naming both."
)


RuntimeDep = Annotated[TasksRuntime, Depends(provided(MirrorRuntime))]


async def tasks_service(runtime: RuntimeDep) -> TasksService:
    return TasksService(runtime)


ServiceDep = Annotated[TasksService, Depends(tasks_service)]


# --- task lists ------------------------------------------------------------------------------


@router.get(
    "/lists",
    summary="The caller's task lists (as Google has them now)",
    responses=problem_responses(Unauthorized, InvalidInput, InvalidCursor, *GOOGLE_PROBLEMS),
)
async def list_tasklists(
    principal: PrincipalDep,
    service: ServiceDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[TaskListPublic]:
    """Read from Google on every call (and mirrored): the default list first, then the others
    by title, a page at a time."""
    lists = await service.lists(principal)
    return context.cursors.listed_page(
        lists,
        limit,
        cursor,
        key=lambda tasklist: [
            "0" if tasklist.is_default else "1",
            tasklist.title,
            tasklist.google_id,
        ],
        scope=f"tasklists:{principal.org_id}:{principal.sub}",
    )


@router.post(
    "/lists",
    status_code=status.HTTP_201_CREATED,
    summary="Create a task list (`title`|`name`)",
    description=(
        "Creates the list in the caller's Google Tasks and mirrors it; with "
        "`Idempotency-Key`, a retry answers the first list."
    ),
    responses=problem_responses(
        Unauthorized, Forbidden, InvalidInput, *GOOGLE_PROBLEMS, *IDEMPOTENCY_PROBLEMS
    ),
    dependencies=[IDEMPOTENT],
)
async def create_tasklist(
    data: TaskListWrite, principal: PrincipalDep, service: ServiceDep, response: Response
) -> TaskListPublic:
    tasklist = await service.create_list(principal, data.title)
    response.headers["Location"] = f"/api/tasks/lists/{tasklist.id}"
    return tasklist


@router.get(
    "/lists/{list_id}",
    summary="One of the caller's task lists",
    description="A list from the mirror; another user's list is `404`.",
    responses=problem_responses(Unauthorized, NotFound),
)
async def get_tasklist(
    list_id: UUID, principal: PrincipalDep, service: ServiceDep
) -> TaskListPublic:
    return await service.get_list(principal, list_id)


@router.patch(
    "/lists/{list_id}",
    summary="Rename a task list (`title`|`name`)",
    description="Renames the list in Google and in the mirror.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput, *GOOGLE_PROBLEMS),
)
async def rename_tasklist(
    list_id: UUID, data: TaskListWrite, principal: PrincipalDep, service: ServiceDep
) -> TaskListPublic:
    return await service.rename_list(principal, list_id, data.title)


@router.delete(
    "/lists/{list_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a task list and its tasks (not the default list)",
    description=(
        "Deletes the list in Google and marks its tasks deleted. The default list "
        "cannot be deleted (`422` naming `path.list_id`)."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput, *GOOGLE_PROBLEMS),
)
async def delete_tasklist(list_id: UUID, principal: PrincipalDep, service: ServiceDep) -> None:
    await service.delete_list(principal, list_id)


@router.post(
    "/lists/{list_id}/clear",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Clear completed tasks: Google hides them (they stay, `hidden: true`)",
    description=(
        "Asks Google to clear the list's completed tasks; they stay, hidden, and "
        "leave the default listing."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, *GOOGLE_PROBLEMS),
)
async def clear_completed(list_id: UUID, principal: PrincipalDep, service: ServiceDep) -> None:
    await service.clear_completed(principal, list_id)


# --- tasks -----------------------------------------------------------------------------------


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a task, optionally a subtask, linked to CRM records, or assigned",
    description=(
        f"{ALIAS_NOTE} `due` is a date or an offset date-time (its calendar date is kept). "
        "With `assignee_id`, the task is created in that user's default Google Tasks list "
        "through their connection, recording who assigned it; a user outside the caller's org "
        "(or without Google Tasks connected) answers 422. With `Idempotency-Key`, a retried "
        "request answers the task the first one created (`200`), never a second task — also "
        "when the first attempt died between Google's answer and our commit; while the first "
        "attempt is still running, `409` with `Retry-After`."
    ),
    responses=problem_responses(
        Unauthorized,
        Forbidden,
        NotFound,
        InvalidInput,
        Conflict,
        IdempotencyKeyReused,
        *GOOGLE_PROBLEMS,
    ),
)
async def create_task(
    data: TaskCreate,
    principal: PrincipalDep,
    service: ServiceDep,
    response: Response,
    idempotency_key: IdempotencyKeyDep,
) -> TaskPublic:
    task, created = await service.create(principal, data, idempotency_key)
    answer_created(response, f"/api/tasks/{task.id}", created)
    return task


@router.get(
    "",
    summary="List tasks: the caller's (by list, status, due range), or those of a CRM record",
    description=(
        "With `record_type` and `record_id`: every task of the org linked to that record, if "
        "the caller may read it. Otherwise the caller's own tasks, or with `assigned_by_me` "
        "the tasks they assigned to others. Oldest first."
    ),
    responses=problem_responses(Unauthorized, NotFound, InvalidInput, InvalidCursor),
)
async def list_tasks(
    principal: PrincipalDep,
    service: ServiceDep,
    context: ContextDep,
    record: RecordFilterDep,
    list_id: Annotated[UUID | None, Query()] = None,
    status_: Annotated[TaskStatus | None, Query(alias="status")] = None,
    due_min: Annotated[IsoDate | None, Query(description="Due on or after")] = None,
    due_max: Annotated[IsoDate | None, Query(description="Due on or before")] = None,
    assigned_by_me: bool = False,
    include_hidden: Annotated[
        bool,
        Query(
            description="Include hidden tasks (cleared, or completed in Google's own apps); "
            "`status=completed` includes them anyway"
        ),
    ] = False,
    include_deleted: bool = False,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[TaskPublic]:
    if due_min is not None and due_max is not None and due_max < due_min:
        raise InvalidInput("due_max: before due_min")
    filters = TaskFilters(
        list_id=list_id,
        record=record,
        status=status_,
        due_min=due_min,
        due_max=due_max,
        assigned_by_me=assigned_by_me,
        include_hidden=include_hidden,
        include_deleted=include_deleted,
    )
    scope = f"tasks:{filters!r}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    tasks = await service.list_tasks(principal, filters, after=after, limit=limit + 1)
    return context.cursors.keyset_page(
        tasks, limit, moment=lambda task: task.created_at, scope=scope
    )


@router.get(
    "/{task_id:uuid}",
    summary="Get a task (its assignee, who assigned it, or a reader of a linked record)",
    description=(
        "A task from the mirror, to its assignee, to whoever assigned it, or to a "
        "reader of a CRM record it is linked to."
    ),
    responses=problem_responses(Unauthorized, NotFound),
)
async def get_task(task_id: UUID, principal: PrincipalDep, service: ServiceDep) -> TaskPublic:
    return await service.get(principal, task_id)


@router.patch(
    "/{task_id:uuid}",
    summary="Change a task's title, notes, due date, status or links",
    description=f"{ALIAS_NOTE} `links` replaces the links.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput, *GOOGLE_PROBLEMS),
)
async def update_task(
    task_id: UUID, data: TaskUpdate, principal: PrincipalDep, service: ServiceDep
) -> TaskPublic:
    return await service.update(principal, task_id, data)


@router.post(
    "/{task_id:uuid}/complete",
    summary="Complete a task",
    description=(
        "Marks the task completed in Google, which records when; the mirror and the "
        "timeline follow."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, *GOOGLE_PROBLEMS),
)
async def complete_task(task_id: UUID, principal: PrincipalDep, service: ServiceDep) -> TaskPublic:
    return await service.update(principal, task_id, TaskUpdate(status="completed"))


@router.post(
    "/{task_id:uuid}/reopen",
    summary="Reopen a completed task",
    description="Marks a completed task as needing action again, in Google and the mirror.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, *GOOGLE_PROBLEMS),
)
async def reopen_task(task_id: UUID, principal: PrincipalDep, service: ServiceDep) -> TaskPublic:
    return await service.update(principal, task_id, TaskUpdate(status="needsAction"))


@router.post(
    "/{task_id:uuid}/move",
    summary="Move a task within its list: under `parent_id` (a subtask), after `previous_id`",
    description=(
        "Reorders the task in Google: under `parent_id` to make it a subtask (none: "
        "top level), after `previous_id` (none: first)."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput, *GOOGLE_PROBLEMS),
)
async def move_task(
    task_id: UUID, data: TaskMove, principal: PrincipalDep, service: ServiceDep
) -> TaskPublic:
    return await service.move(principal, task_id, data)


@router.delete(
    "/{task_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a task and its subtasks",
    description=(
        "Deletes the task in Google; its subtasks go with it. The mirror keeps it as deleted."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, *GOOGLE_PROBLEMS),
)
async def delete_task(task_id: UUID, principal: PrincipalDep, service: ServiceDep) -> None:
    await service.delete(principal, task_id)


# --- the org's settings ----------------------------------------------------------------------


org_settings_routes(
    router,
    product="tasks",
    model=OrgTasksSettings,
    public=TaskSettingsPublic,
    write=TaskSettingsWrite,
    read_description="What a disconnected account's tasks become.",
    write_summary="Set the org's tasks settings (admins): the disconnect rule",
    write_description=(
        "Replaces the org's tasks settings; `on_disconnect` applies to the tasks of users who "
        "disconnect from then on."
    ),
)
