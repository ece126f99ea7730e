"""The Google Tasks calls this service makes, and what Google answers as typed models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from pipedesk_common.google import GoogleApi, GoogleUser
from pipedesk_common.google.calls import Reconcile
from pipedesk_common.google.resources import GoogleResource, Page, as_utc, rfc3339

DEFAULT_LIST: Final = "@default"
COMPLETED: Final = "completed"


class GoogleTaskList(GoogleResource):
    id: str
    title: str | None = None
    etag: str | None = None
    updated: datetime | None = None


class GoogleTask(GoogleResource):
    id: str
    etag: str | None = None
    updated: datetime | None = None
    title: str | None = None
    notes: str | None = None
    status: str = "needsAction"
    due: datetime | None = None
    completed: datetime | None = None
    parent: str | None = None
    position: str | None = None
    hidden: bool = False
    deleted: bool = False
    web_view_link: str | None = None

    @property
    def due_date(self) -> date | None:
        """Google keeps the due date as midnight UTC of that date."""
        moment = as_utc(self.due)
        return moment.date() if moment else None


class TasksGoogle:
    def __init__(self, api: GoogleApi) -> None:
        self.api = api

    async def check_connected(self, user: GoogleUser) -> None:
        """Raises ``GoogleNotConnected`` unless ``user`` has connected Google Tasks."""
        await self.api.ensure_connected(user)

    # --- task lists --------------------------------------------------------------------------

    async def tasklists(self, user: GoogleUser) -> list[GoogleTaskList]:
        return await self.api.list_all(
            user,
            "tasklists.list",
            lambda client, token: client.tasklists().list(maxResults=100, pageToken=token),
            GoogleTaskList,
        )

    async def tasklist(self, user: GoogleUser, tasklist: str) -> GoogleTaskList:
        return await self.api.parsed(
            user,
            "tasklists.get",
            lambda client: client.tasklists().get(tasklist=tasklist),
            GoogleTaskList,
        )

    async def insert_tasklist(
        self, user: GoogleUser, title: str, *, reconcile: Reconcile
    ) -> GoogleTaskList:
        """Create a list. Google takes no client ids, so an insert whose outcome is unknown is
        tried again only after ``reconcile`` found no list it made."""
        return await self.api.parsed(
            user,
            "tasklists.insert",
            lambda client: client.tasklists().insert(body={"title": title}),
            GoogleTaskList,
            reconcile=reconcile,
        )

    async def rename_tasklist(self, user: GoogleUser, tasklist: str, title: str) -> GoogleTaskList:
        return await self.api.parsed(
            user,
            "tasklists.patch",
            lambda client: client.tasklists().patch(tasklist=tasklist, body={"title": title}),
            GoogleTaskList,
        )

    async def delete_tasklist(self, user: GoogleUser, tasklist: str) -> None:
        """Delete a list; one Google no longer has counts as deleted."""
        await self.api.ensure_gone(
            user, "tasklists.delete", lambda client: client.tasklists().delete(tasklist=tasklist)
        )

    # --- tasks -------------------------------------------------------------------------------

    async def insert(
        self,
        user: GoogleUser,
        tasklist: str,
        body: dict[str, Any],
        *,
        parent: str | None,
        previous: str | None,
        reconcile: Reconcile,
    ) -> GoogleTask:
        """Create a task. Google takes no client ids, so an insert whose outcome is unknown is
        tried again only after ``reconcile`` found no task it made."""
        return await self.api.parsed(
            user,
            "tasks.insert",
            lambda client: client.tasks().insert(
                tasklist=tasklist, body=body, parent=parent, previous=previous
            ),
            GoogleTask,
            reconcile=reconcile,
        )

    async def patch(
        self, user: GoogleUser, tasklist: str, task: str, body: dict[str, Any]
    ) -> GoogleTask:
        return await self.api.parsed(
            user,
            "tasks.patch",
            lambda client: client.tasks().patch(tasklist=tasklist, task=task, body=body),
            GoogleTask,
        )

    async def move(
        self,
        user: GoogleUser,
        tasklist: str,
        task: str,
        *,
        parent: str | None,
        previous: str | None,
    ) -> GoogleTask:
        return await self.api.parsed(
            user,
            "tasks.move",
            lambda client: client.tasks().move(
                tasklist=tasklist, task=task, parent=parent, previous=previous
            ),
            GoogleTask,
        )

    async def delete(self, user: GoogleUser, tasklist: str, task: str) -> None:
        """Delete a task (Google marks it and its subtasks deleted); already gone counts."""
        await self.api.ensure_gone(
            user, "tasks.delete", lambda client: client.tasks().delete(tasklist=tasklist, task=task)
        )

    async def clear(self, user: GoogleUser, tasklist: str) -> None:
        """Hide every completed task of a list."""
        await self.api.call(
            user, "tasks.clear", lambda client: client.tasks().clear(tasklist=tasklist)
        )

    async def page(
        self,
        user: GoogleUser,
        tasklist: str,
        *,
        updated_min: datetime | None,
        page_token: str | None,
        page_size: int,
    ) -> Page[GoogleTask]:
        """One page of every task of a list changed since ``updated_min`` (all when None),
        including completed, hidden and deleted ones: the poll must see every change."""
        parameters: dict[str, Any] = {
            "tasklist": tasklist,
            "maxResults": page_size,
            "showCompleted": True,
            "showDeleted": True,
            "showHidden": True,
        }
        if updated_min is not None:
            parameters["updatedMin"] = rfc3339(updated_min)
        if page_token is not None:
            parameters["pageToken"] = page_token
        return await self.api.page(
            user,
            "tasks.list",
            lambda client: client.tasks().list(**parameters),
            GoogleTask,
            skip_unreadable=True,
        )
