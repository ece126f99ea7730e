"""Google Tasks API v1: task lists and tasks, per user, at ``/tasks/v1/…``."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from google_emulator.core import (
    Emulator,
    GoogleError,
    begin,
    rfc3339,
)
from google_emulator.paging import paged

DEFAULT_LIST_TITLE = "My Tasks"
TASK_FIELDS = ("title", "notes", "status", "due", "completed", "deleted")
STATUSES = ("needsAction", "completed")

router = APIRouter(prefix="/tasks/v1")


@dataclass
class TaskRecord:
    id: str
    updated: datetime
    title: str = ""
    notes: str | None = None
    status: str = "needsAction"
    due: str | None = None
    completed: str | None = None
    deleted: bool = False
    hidden: bool = False
    parent: str | None = None
    position: str = "0" * 20
    version: int = 1


@dataclass
class TaskListRecord:
    id: str
    title: str
    updated: datetime
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    version: int = 1


@dataclass
class UserTasks:
    default_id: str
    lists: dict[str, TaskListRecord] = field(default_factory=dict)


@dataclass
class TasksState:
    users: dict[str, UserTasks] = field(default_factory=dict)


def _new_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(12)).decode().rstrip("=")


def _etag(kind: str, ident: str, version: int) -> str:
    digest = hashlib.sha256(f"{kind}:{ident}:{version}".encode()).digest()
    return '"' + base64.urlsafe_b64encode(digest[:18]).decode() + '"'


def user_tasks(emulator: Emulator, email: str) -> UserTasks:
    """A user's Tasks data, created with the default "My Tasks" list on first use."""
    state = emulator.apis.setdefault("tasks", TasksState())
    assert isinstance(state, TasksState)
    key = email.lower()
    data = state.users.get(key)
    if data is None:
        default = TaskListRecord(
            id=_new_id(), title=DEFAULT_LIST_TITLE, updated=emulator.clock.now()
        )
        data = UserTasks(default_id=default.id, lists={default.id: default})
        state.users[key] = data
    return data


def _tasklist(data: UserTasks, tasklist: str) -> TaskListRecord:
    found = data.lists.get(data.default_id if tasklist == "@default" else tasklist)
    if found is None:
        raise GoogleError(404, "notFound", "Task list not found.")
    return found


def _task(tasklist: TaskListRecord, task: str) -> TaskRecord:
    found = tasklist.tasks.get(task)
    if found is None:
        raise GoogleError(404, "notFound", "Task not found.")
    return found


def _timestamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise GoogleError(400, "invalid", f"Invalid value for {name}: expected an RFC 3339 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise GoogleError(400, "invalid", f"Invalid value for {name}: {value}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def tasklist_json(base: str, tasklist: TaskListRecord) -> dict[str, Any]:
    """A task list resource as Google returns it."""
    return {
        "kind": "tasks#taskList",
        "id": tasklist.id,
        "etag": _etag("list", tasklist.id, tasklist.version),
        "title": tasklist.title,
        "updated": rfc3339(tasklist.updated),
        "selfLink": f"{base}/tasks/v1/users/@me/lists/{tasklist.id}",
    }


def task_json(base: str, tasklist: TaskListRecord, task: TaskRecord) -> dict[str, Any]:
    """A task resource as Google returns it (absent optional fields are omitted)."""
    body: dict[str, Any] = {
        "kind": "tasks#task",
        "id": task.id,
        "etag": _etag("task", task.id, task.version),
        "title": task.title,
        "updated": rfc3339(task.updated),
        "selfLink": f"{base}/tasks/v1/lists/{tasklist.id}/tasks/{task.id}",
        "position": task.position,
        "status": task.status,
        "webViewLink": f"https://tasks.google.com/task/{task.id}",
    }
    optional = {"parent": task.parent, "notes": task.notes, "due": task.due}
    optional["completed"] = task.completed
    body.update({key: value for key, value in optional.items() if value is not None})
    if task.deleted:
        body["deleted"] = True
    if task.hidden:
        body["hidden"] = True
    return body


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise GoogleError(400, "parseError", "Parse Error") from exc
    if not isinstance(body, dict):
        raise GoogleError(400, "invalid", "The request body must be a JSON object.")
    return body


def _touch_list(emulator: Emulator, tasklist: TaskListRecord) -> None:
    tasklist.updated = emulator.clock.now()
    tasklist.version += 1


def _touch(emulator: Emulator, task: TaskRecord) -> None:
    task.updated = emulator.clock.now()
    task.version += 1


def _title(body: dict[str, Any], *, required: bool) -> str | None:
    title = body.get("title")
    if title is None:
        if required:
            raise GoogleError(400, "required", "Missing title.")
        return None
    if not isinstance(title, str) or len(title) > 1024:
        raise GoogleError(400, "invalid", "Invalid value for title.")
    return title


def apply_task_fields(emulator: Emulator, task: TaskRecord, body: dict[str, Any]) -> None:
    """Set the writable fields present in ``body`` (``null`` clears a field)."""
    if "title" in body:
        task.title = _title(body, required=False) or ""
    if "notes" in body:
        notes = body["notes"]
        if notes is not None and (not isinstance(notes, str) or len(notes) > 8192):
            raise GoogleError(400, "invalid", "Invalid value for notes.")
        task.notes = notes
    if "due" in body:
        due = body["due"]
        if due is None:
            task.due = None
        else:
            day = _timestamp(due, "due").date()
            task.due = rfc3339(datetime(day.year, day.month, day.day, tzinfo=UTC))
    if "deleted" in body:
        task.deleted = bool(body["deleted"])
    status = body.get("status")
    if status is not None and status not in STATUSES:
        raise GoogleError(400, "invalid", f"Invalid value for status: {status}")
    if status == "needsAction":
        task.status, task.completed = "needsAction", None
    elif status == "completed" or (task.status == "completed" and body.get("completed")):
        task.status = "completed"
        given = body.get("completed")
        if given is not None:
            task.completed = rfc3339(_timestamp(given, "completed"))
        elif task.completed is None:
            task.completed = rfc3339(emulator.clock.now())


def _siblings(tasklist: TaskListRecord, parent: str | None, exclude: str) -> list[TaskRecord]:
    found = [t for t in tasklist.tasks.values() if t.parent == parent and t.id != exclude]
    return sorted(found, key=lambda t: t.position)


def _place(
    tasklist: TaskListRecord, task: TaskRecord, parent: str | None, previous: str | None
) -> None:
    """Put ``task`` under ``parent`` right after ``previous`` (first when None); renumber."""
    if parent is not None:
        ancestor: str | None = parent
        while ancestor is not None:
            if ancestor == task.id:
                raise GoogleError(400, "invalid", "A task cannot be moved under itself.")
            ancestor = _task(tasklist, ancestor).parent
    siblings = _siblings(tasklist, parent, task.id)
    index = 0
    if previous is not None:
        ids = [sibling.id for sibling in siblings]
        if previous not in ids:
            raise GoogleError(400, "invalid", "Invalid value for previous: not a sibling.")
        index = ids.index(previous) + 1
    siblings.insert(index, task)
    task.parent = parent
    for number, sibling in enumerate(siblings):
        sibling.position = f"{number:020d}"


def _tree_order(tasklist: TaskListRecord) -> list[TaskRecord]:
    ordered: list[TaskRecord] = []

    def walk(parent: str | None) -> None:
        for task in _siblings(tasklist, parent, ""):
            ordered.append(task)
            walk(task.id)

    walk(None)
    return ordered


# Task lists


def listing_order(data: UserTasks) -> list[TaskListRecord]:
    """Google promises no order of a user's lists (the default is not known to come first):
    the emulator lists them by title."""
    return sorted(data.lists.values(), key=lambda t: (t.title.casefold(), t.id))


@router.get("/users/@me/lists")
async def tasklists_list(
    request: Request,
    max_results: int = Query(1000, alias="maxResults", ge=1, le=1000),
) -> dict[str, Any]:
    """tasks.tasklists.list"""
    emulator, email = await begin(request, "tasks.tasklists.list")
    data = user_tasks(emulator, email)
    page = paged(
        emulator,
        request,
        f"tasklists:{email}",
        max_results,
        lambda: ([tasklist_json(_base(request), t) for t in listing_order(data)], {}),
    )
    body: dict[str, Any] = {
        "kind": "tasks#taskLists",
        "etag": _etag("lists", email, sum(t.version for t in data.lists.values())),
        "items": list(page.items),
    }
    if page.next_page_token:
        body["nextPageToken"] = page.next_page_token
    return body


@router.get("/users/@me/lists/{tasklist}")
async def tasklists_get(request: Request, tasklist: str) -> dict[str, Any]:
    """tasks.tasklists.get"""
    emulator, email = await begin(request, "tasks.tasklists.get")
    return tasklist_json(_base(request), _tasklist(user_tasks(emulator, email), tasklist))


@router.post("/users/@me/lists")
async def tasklists_insert(request: Request) -> dict[str, Any]:
    """tasks.tasklists.insert"""
    emulator, email = await begin(request, "tasks.tasklists.insert")
    title = _title(await _json_body(request), required=True) or ""
    record = TaskListRecord(id=_new_id(), title=title, updated=emulator.clock.now())
    user_tasks(emulator, email).lists[record.id] = record
    return tasklist_json(_base(request), record)


async def _modify_list(request: Request, tasklist: str, method: str) -> dict[str, Any]:
    emulator, email = await begin(request, method)
    record = _tasklist(user_tasks(emulator, email), tasklist)
    title = _title(await _json_body(request), required=method.endswith("update"))
    if title is not None:
        record.title = title
    _touch_list(emulator, record)
    return tasklist_json(_base(request), record)


@router.patch("/users/@me/lists/{tasklist}")
async def tasklists_patch(request: Request, tasklist: str) -> dict[str, Any]:
    """tasks.tasklists.patch"""
    return await _modify_list(request, tasklist, "tasks.tasklists.patch")


@router.put("/users/@me/lists/{tasklist}")
async def tasklists_update(request: Request, tasklist: str) -> dict[str, Any]:
    """tasks.tasklists.update"""
    return await _modify_list(request, tasklist, "tasks.tasklists.update")


@router.delete("/users/@me/lists/{tasklist}", status_code=204)
async def tasklists_delete(request: Request, tasklist: str) -> Response:
    """tasks.tasklists.delete (the default list cannot be deleted)"""
    emulator, email = await begin(request, "tasks.tasklists.delete")
    data = user_tasks(emulator, email)
    record = _tasklist(data, tasklist)
    if record.id == data.default_id:
        raise GoogleError(400, "invalid", "The default task list cannot be deleted.")
    del data.lists[record.id]
    return Response(status_code=204)


# Tasks


def _within(value: str | None, low: str | None, high: str | None, name: str) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False
    moment = _timestamp(value, name)
    if low is not None and moment < _timestamp(low, f"{name}Min"):
        return False
    return high is None or moment <= _timestamp(high, f"{name}Max")


@router.get("/lists/{tasklist}/tasks")
async def tasks_list(
    request: Request,
    tasklist: str,
    completed_min: str | None = Query(None, alias="completedMin"),
    completed_max: str | None = Query(None, alias="completedMax"),
    due_min: str | None = Query(None, alias="dueMin"),
    due_max: str | None = Query(None, alias="dueMax"),
    updated_min: str | None = Query(None, alias="updatedMin"),
    max_results: int = Query(20, alias="maxResults", ge=1, le=100),
    show_completed: bool = Query(True, alias="showCompleted"),
    show_deleted: bool = Query(False, alias="showDeleted"),
    show_hidden: bool = Query(False, alias="showHidden"),
    show_assigned: bool = Query(False, alias="showAssigned"),
) -> dict[str, Any]:
    """tasks.tasks.list (assigned tasks do not exist in the emulator, so showAssigned is moot)"""
    emulator, email = await begin(request, "tasks.tasks.list")
    record = _tasklist(user_tasks(emulator, email), tasklist)
    bounds = {"completedMin": completed_min, "completedMax": completed_max, "dueMin": due_min}
    bounds["dueMax"] = due_max
    for name, bound in bounds.items():
        if bound is not None:
            _timestamp(bound, name)
    since = _timestamp(updated_min, "updatedMin") if updated_min is not None else None

    def snapshot() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        selected = [
            task_json(_base(request), record, task)
            for task in _tree_order(record)
            if (show_deleted or not task.deleted)
            and (show_hidden or not task.hidden)
            and (show_completed or task.status != "completed")
            and (since is None or task.updated >= since)
            and _within(task.completed, completed_min, completed_max, "completed")
            and _within(task.due, due_min, due_max, "due")
        ]
        return selected, {}

    page = paged(emulator, request, f"tasks:{email}:{record.id}", max_results, snapshot)
    body: dict[str, Any] = {
        "kind": "tasks#tasks",
        "etag": _etag("tasks", record.id, sum(t.version for t in record.tasks.values())),
    }
    if page.items:
        body["items"] = list(page.items)
    if page.next_page_token:
        body["nextPageToken"] = page.next_page_token
    return body


@router.get("/lists/{tasklist}/tasks/{task}")
async def tasks_get(request: Request, tasklist: str, task: str) -> dict[str, Any]:
    """tasks.tasks.get"""
    emulator, email = await begin(request, "tasks.tasks.get")
    record = _tasklist(user_tasks(emulator, email), tasklist)
    return task_json(_base(request), record, _task(record, task))


def create_task(
    emulator: Emulator,
    record: TaskListRecord,
    body: dict[str, Any],
    parent: str | None = None,
    previous: str | None = None,
) -> TaskRecord:
    """Add a task built from ``body`` to a list, placed under ``parent`` after ``previous``."""
    if parent is not None:
        _task(record, parent)
    task = TaskRecord(id=_new_id(), updated=emulator.clock.now())
    apply_task_fields(emulator, task, body)
    _place(record, task, parent, previous)
    record.tasks[task.id] = task
    return task


@router.post("/lists/{tasklist}/tasks")
async def tasks_insert(
    request: Request,
    tasklist: str,
    parent: str | None = Query(None),
    previous: str | None = Query(None),
) -> dict[str, Any]:
    """tasks.tasks.insert"""
    emulator, email = await begin(request, "tasks.tasks.insert")
    record = _tasklist(user_tasks(emulator, email), tasklist)
    task = create_task(emulator, record, await _json_body(request), parent, previous)
    return task_json(_base(request), record, task)


async def _modify_task(request: Request, tasklist: str, task: str, method: str) -> dict[str, Any]:
    emulator, email = await begin(request, method)
    record = _tasklist(user_tasks(emulator, email), tasklist)
    found = _task(record, task)
    body = await _json_body(request)
    if method.endswith("update"):
        _title(body, required=True)
        body = {"notes": None, "due": None, **body}
        body.setdefault("status", "needsAction")
    apply_task_fields(emulator, found, body)
    _touch(emulator, found)
    return task_json(_base(request), record, found)


@router.patch("/lists/{tasklist}/tasks/{task}")
async def tasks_patch(request: Request, tasklist: str, task: str) -> dict[str, Any]:
    """tasks.tasks.patch"""
    return await _modify_task(request, tasklist, task, "tasks.tasks.patch")


@router.put("/lists/{tasklist}/tasks/{task}")
async def tasks_update(request: Request, tasklist: str, task: str) -> dict[str, Any]:
    """tasks.tasks.update"""
    return await _modify_task(request, tasklist, task, "tasks.tasks.update")


def _descendants(record: TaskListRecord, task_id: str) -> list[TaskRecord]:
    children = [t for t in record.tasks.values() if t.parent == task_id]
    return children + [d for child in children for d in _descendants(record, child.id)]


@router.delete("/lists/{tasklist}/tasks/{task}", status_code=204)
async def tasks_delete(request: Request, tasklist: str, task: str) -> Response:
    """tasks.tasks.delete: marks the task and its subtasks deleted"""
    emulator, email = await begin(request, "tasks.tasks.delete")
    record = _tasklist(user_tasks(emulator, email), tasklist)
    found = _task(record, task)
    for doomed in [found, *_descendants(record, found.id)]:
        doomed.deleted = True
        _touch(emulator, doomed)
    return Response(status_code=204)


@router.post("/lists/{tasklist}/tasks/{task}/move")
async def tasks_move(
    request: Request,
    tasklist: str,
    task: str,
    parent: str | None = Query(None),
    previous: str | None = Query(None),
    destination: str | None = Query(None, alias="destinationTasklist"),
) -> dict[str, Any]:
    """tasks.tasks.move: to a new parent/position, optionally into another list (with subtasks)"""
    emulator, email = await begin(request, "tasks.tasks.move")
    data = user_tasks(emulator, email)
    record = _tasklist(data, tasklist)
    found = _task(record, task)
    target = _tasklist(data, destination) if destination else record
    if parent is not None:
        _task(target, parent)
    if target is not record:
        for moving in [found, *_descendants(record, found.id)]:
            target.tasks[moving.id] = record.tasks.pop(moving.id)
        found.parent = None
    _place(target, found, parent, previous)
    _touch(emulator, found)
    return task_json(_base(request), target, found)


@router.post("/lists/{tasklist}/clear", status_code=204)
async def tasks_clear(request: Request, tasklist: str) -> Response:
    """tasks.tasks.clear: hides every completed task of the list"""
    emulator, email = await begin(request, "tasks.tasks.clear")
    record = _tasklist(user_tasks(emulator, email), tasklist)
    for task in record.tasks.values():
        if task.status == "completed" and not task.hidden and not task.deleted:
            task.hidden = True
            _touch(emulator, task)
    return Response(status_code=204)


def seed_task(
    emulator: Emulator, base: str, email: str, tasklist: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Create or change a task as if done in Google's own UI (an ``id`` in ``body`` selects it)."""
    record = _tasklist(user_tasks(emulator, email), tasklist)
    fields = {key: value for key, value in body.items() if key in TASK_FIELDS}
    existing = body.get("id")
    if existing is None:
        was_completed = False
        task = create_task(emulator, record, fields, body.get("parent"), body.get("previous"))
    else:
        task = _task(record, str(existing))
        was_completed = task.status == "completed"
        apply_task_fields(emulator, task, fields)
    if "hidden" in body:
        task.hidden = bool(body["hidden"])
    elif task.status != "completed":
        task.hidden = False
    elif not was_completed:
        # Google's own apps hide what they complete: the API lists it only with showHidden.
        task.hidden = True
    if existing is not None:
        _touch(emulator, task)
    return task_json(base, record, task)
