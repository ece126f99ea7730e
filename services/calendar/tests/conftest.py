"""The calendar service under test (on a real socket: Google's push must reach its webhook), with
helpers to see and change what Google holds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from calendar_service.app import build_app
from calendar_service.models import TABLES
from calendar_service.settings import WEBHOOK_PATH, CalendarSettings
from pipedesk_testkit.identities import ActingUser
from pipedesk_testkit.service import ServiceUnderTest, World


class CalendarStack(ServiceUnderTest):
    async def google_events(self, user: ActingUser) -> list[dict[str, Any]]:
        """The user's primary calendar as Google holds it (the real API, with a token minted
        for the check)."""
        token = await self.google_token(user, ["https://www.googleapis.com/auth/calendar.readonly"])
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(
                f"{self.google.emulator_url}/calendar/v3/calendars/primary/events",
                params={"maxResults": 2500},
                headers={"Authorization": f"Bearer {token}"},
            )
        answer.raise_for_status()
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def seed(self, method: str, user: ActingUser, path: str = "", **kwargs: Any) -> Any:
        """Change the user's primary calendar "in Google" (as another attendee would)."""
        answer = await self.google.admin(
            method, f"/calendar/{user.principal.email}/events{path}", **kwargs
        )
        return answer.json() if answer.content else None


@pytest.fixture
def stack(world: World) -> CalendarStack:
    return CalendarStack(
        world,
        build_app=build_app,
        settings_class=CalendarSettings,
        product="calendar",
        outbox=TABLES.outbox,
        at_url=lambda url: {"webhook_url": url + WEBHOOK_PATH},
    )
