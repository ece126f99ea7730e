"""The Google Calendar calls this service makes (through the shared call layer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pipedesk_common.errors import NotFound
from pipedesk_common.google import GoogleApi, GoogleCallError, GoogleUser
from pipedesk_common.google.calls import RetryPolicy
from pipedesk_common.google.credentials import CredentialsProvider
from pipedesk_common.google.push import OpenedChannel, WatchCall

SCOPES: Final = (
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.readonly",
)


class SyncTokenExpired(Exception):
    """Google answered 410 to a sync token: the calendar needs a full sync."""


@dataclass(frozen=True)
class EventPage:
    items: list[dict[str, Any]]
    next_page_token: str | None
    next_sync_token: str | None


def _refused(error: GoogleCallError, status: int) -> bool:
    return error.google_status == status


class CalendarGoogle:
    def __init__(
        self,
        credentials: CredentialsProvider,
        *,
        root_url: str | None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.api = GoogleApi(
            "calendar",
            "v3",
            credentials=credentials,
            scopes=SCOPES,
            root_url=root_url,
            policy=policy,
        )

    async def calendars(self, user: GoogleUser) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:

            def request(client: Any, token: str | None = page_token) -> Any:
                return client.calendarList().list(pageToken=token)

            answer = await self.api.call(user, "calendarList.list", request)
            items.extend(answer.get("items", []))
            page_token = answer.get("nextPageToken")
            if not page_token:
                return items

    async def calendar(self, user: GoogleUser, calendar_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user,
            "calendarList.get",
            lambda client: client.calendarList().get(calendarId=calendar_id),
        )
        return answer

    async def insert(
        self, user: GoogleUser, calendar_id: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Insert ``body`` (which carries our chosen ``id``); (event, created). Google's 409 for
        that id means an earlier attempt already created it: that event is answered."""
        try:
            answer: dict[str, Any] = await self.api.call(
                user,
                "events.insert",
                lambda client: client.events().insert(
                    calendarId=calendar_id, body=body, conferenceDataVersion=1
                ),
            )
        except GoogleCallError as error:
            if not _refused(error, 409):
                raise
            return await self.get(user, calendar_id, body["id"]), False
        return answer, True

    async def get(self, user: GoogleUser, calendar_id: str, event_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user,
            "events.get",
            lambda client: client.events().get(calendarId=calendar_id, eventId=event_id),
        )
        return answer

    async def patch(
        self, user: GoogleUser, calendar_id: str, event_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = await self.api.call(
            user,
            "events.patch",
            lambda client: client.events().patch(
                calendarId=calendar_id, eventId=event_id, body=body, conferenceDataVersion=1
            ),
        )
        return answer

    async def cancel(self, user: GoogleUser, calendar_id: str, event_id: str) -> None:
        """Delete (Google marks it cancelled); already deleted counts as done."""
        try:
            await self.api.call(
                user,
                "events.delete",
                lambda client: client.events().delete(calendarId=calendar_id, eventId=event_id),
            )
        except GoogleCallError as error:
            if not _refused(error, 410):
                raise

    async def page(
        self,
        user: GoogleUser,
        calendar_id: str,
        *,
        sync_token: str | None,
        page_token: str | None,
        page_size: int,
    ) -> EventPage:
        """One page of an incremental (``sync_token``) or full listing."""
        parameters: dict[str, Any] = {"calendarId": calendar_id, "maxResults": page_size}
        # A page token carries the listing it continues; the sync token starts one.
        if page_token is not None:
            parameters["pageToken"] = page_token
        elif sync_token is not None:
            parameters["syncToken"] = sync_token
        try:
            answer = await self.api.call(
                user, "events.list", lambda client: client.events().list(**parameters)
            )
        except GoogleCallError as error:
            if _refused(error, 410):
                raise SyncTokenExpired(calendar_id) from error
            raise
        return EventPage(
            items=list(answer.get("items", [])),
            next_page_token=answer.get("nextPageToken"),
            next_sync_token=answer.get("nextSyncToken"),
        )

    async def free_busy(
        self, user: GoogleUser, time_min: datetime, time_max: datetime, calendar_ids: Sequence[str]
    ) -> dict[str, Any]:
        body = {
            "timeMin": time_min.isoformat(),
            "timeMax": time_max.isoformat(),
            "items": [{"id": calendar_id} for calendar_id in calendar_ids],
        }
        answer: dict[str, Any] = await self.api.call(
            user, "freebusy.query", lambda client: client.freebusy().query(body=body)
        )
        return answer

    def watcher(self, address: str) -> WatchCall:
        """``events.watch`` on a calendar, notifications sent to ``address``."""

        async def watch(
            user: GoogleUser, calendar_id: str, channel_id: str, token: str, ttl_seconds: int
        ) -> OpenedChannel:
            body = {
                "id": channel_id,
                "type": "web_hook",
                "address": address,
                "token": token,
                "params": {"ttl": str(ttl_seconds)},
            }
            answer = await self.api.call(
                user,
                "events.watch",
                lambda client: client.events().watch(calendarId=calendar_id, body=body),
            )
            return OpenedChannel(
                resource_id=str(answer["resourceId"]), expiration=answer.get("expiration")
            )

        return watch

    async def stop(self, user: GoogleUser, channel_id: str, resource_id: str) -> None:
        """Stop a channel; one Google no longer knows (expired, stopped) counts as stopped."""
        try:
            await self.api.call(
                user,
                "channels.stop",
                lambda client: client.channels().stop(
                    body={"id": channel_id, "resourceId": resource_id}
                ),
            )
        except NotFound:
            return
