"""The Google Tasks calls this service makes (through the shared call layer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pipedesk_common.errors import NotFound
from pipedesk_common.google import GoogleApi, GoogleUser
from pipedesk_common.google.calls import RetryPolicy
from pipedesk_common.google.credentials import CredentialsProvider
from pipedesk_common.google.scopes import PRODUCT_SCOPES

SCOPES: Final = PRODUCT_SCOPES["tasks"]
DEFAULT_LIST: Final = "@default"


def google_time(moment: datetime) -> str:
    """RFC 3339 as Google writes it (UTC, milliseconds)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class TaskPage:
    items: list[dict[str, Any]]
    next_page_token: str | None


class TasksGoogle:
    def __init__(
        self,
        credentials: CredentialsProvider,
        *,
        root_url: str | None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.credentials = credentials
        self.api = GoogleApi(
            "tasks", "v1", credentials=credentials, scopes=SCOPES, root_url=root_url, policy=policy
        )

    async def check_connected(self, user: GoogleUser) -> None:
        """Raises ``GoogleNotConnected`` unless ``user`` has connected Google Tasks."""
        await self.credentials.credentials(user, SCOPES)

    # --- task lists --------------------------------------------------------------------------

    async def tasklists(self, user: GoogleUser) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:

            def request(client: Any, token: str | None = page_token) -> Any:
                return client.tasklists().list(maxResults=100, pageToken=token)

            answer = await self.api.call(user, "tasklists.list", request)
            items.extend(answer.get("items", []))
            page_token = answer.get("nextPageToken")
            if not page_token:
                return items

    async def tasklist(self, user: GoogleUser, tasklist: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user, "tasklists.get", lambda client: client.tasklists().get(tasklist=tasklist)
        )
        return answer

    async def insert_tasklist(self, user: GoogleUser, title: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user,
            "tasklists.insert",
            lambda client: client.tasklists().insert(body={"title": title}),
        )
        return answer

    async def rename_tasklist(self, user: GoogleUser, tasklist: str, title: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user,
            "tasklists.patch",
            lambda client: client.tasklists().patch(tasklist=tasklist, body={"title": title}),
        )
        return answer

    async def delete_tasklist(self, user: GoogleUser, tasklist: str) -> None:
        """Delete a list; one Google no longer has counts as deleted."""
        try:
            await self.api.call(
                user,
                "tasklists.delete",
                lambda client: client.tasklists().delete(tasklist=tasklist),
            )
        except NotFound:
            return

    # --- tasks -------------------------------------------------------------------------------

    async def insert(
        self,
        user: GoogleUser,
        tasklist: str,
        body: dict[str, Any],
        *,
        parent: str | None,
        previous: str | None,
    ) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user,
            "tasks.insert",
            lambda client: client.tasks().insert(
                tasklist=tasklist, body=body, parent=parent, previous=previous
            ),
        )
        return answer

    async def get(self, user: GoogleUser, tasklist: str, task: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user, "tasks.get", lambda client: client.tasks().get(tasklist=tasklist, task=task)
        )
        return answer

    async def patch(
        self, user: GoogleUser, tasklist: str, task: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user,
            "tasks.patch",
            lambda client: client.tasks().patch(tasklist=tasklist, task=task, body=body),
        )
        return answer

    async def move(
        self,
        user: GoogleUser,
        tasklist: str,
        task: str,
        *,
        parent: str | None,
        previous: str | None,
    ) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user,
            "tasks.move",
            lambda client: client.tasks().move(
                tasklist=tasklist, task=task, parent=parent, previous=previous
            ),
        )
        return answer

    async def delete(self, user: GoogleUser, tasklist: str, task: str) -> None:
        """Delete a task (Google marks it and its subtasks deleted); already gone counts."""
        try:
            await self.api.call(
                user,
                "tasks.delete",
                lambda client: client.tasks().delete(tasklist=tasklist, task=task),
            )
        except NotFound:
            return

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
    ) -> TaskPage:
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
            parameters["updatedMin"] = google_time(updated_min)
        if page_token is not None:
            parameters["pageToken"] = page_token
        answer = await self.api.call(
            user, "tasks.list", lambda client: client.tasks().list(**parameters)
        )
        return TaskPage(
            items=list(answer.get("items", [])), next_page_token=answer.get("nextPageToken")
        )
