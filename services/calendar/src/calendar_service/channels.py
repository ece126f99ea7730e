"""Push channels on users' calendars: opened on request, renewed before they expire (the new one
first, then the old one stopped, so no change goes unnoticed in between), stopped on request or
when the user disconnects Google."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from calendar_service.google import CalendarGoogle
from calendar_service.models import UserCalendar, owner_of
from calendar_service.repository import CalendarRepository
from pipedesk_common.clock import Clock
from pipedesk_common.google import GoogleUser
from pipedesk_common.google.push import channel_token, expiration_of

log = logging.getLogger(__name__)


class ChannelKeeper:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        google: CalendarGoogle,
        clock: Clock,
        *,
        secret: bytes,
        address: str,
        ttl: timedelta,
        renew_before: timedelta,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.google = google
        self.clock = clock
        self.secret = secret
        self.address = address
        self.ttl = ttl
        self.renew_before = renew_before

    async def open(self, calendar: UserCalendar) -> Any:
        """A new channel on ``calendar``. Its row is written before Google is asked, so a
        notification that arrives before Google's answer already finds its channel."""
        channel_id = uuid4().hex
        now = self.clock.now()
        async with self.sessionmaker.begin() as session:
            await CalendarRepository(session).add_channel(
                {
                    "id": channel_id,
                    "org_id": calendar.org_id,
                    "user_id": calendar.user_id,
                    "resource": calendar.google_id,
                    "resource_id": "",
                    "expires_at": now + self.ttl,
                    "created_at": now,
                }
            )
        try:
            answer = await self.google.watch(
                owner_of(calendar),
                calendar.google_id,
                channel_id=channel_id,
                token=channel_token(self.secret, channel_id),
                address=self.address,
                ttl_seconds=int(self.ttl.total_seconds()),
            )
        except BaseException:
            async with self.sessionmaker.begin() as session:
                await CalendarRepository(session).delete_channel(channel_id)
            raise
        async with self.sessionmaker.begin() as session:
            repository = CalendarRepository(session)
            await repository.update_channel(
                channel_id,
                resource_id=str(answer["resourceId"]),
                expires_at=expiration_of(answer.get("expiration"), now + self.ttl),
            )
            return await repository.channel(channel_id)

    async def ensure(self, calendar: UserCalendar) -> Any:
        """The calendar's live channel, opening one if it has none that lasts a while yet."""
        async with self.sessionmaker() as session:
            active = await CalendarRepository(session).active_channels(
                calendar.org_id, calendar.user_id, calendar.google_id
            )
        horizon = self.clock.now() + self.renew_before
        lasting = [channel for channel in active if channel.expires_at > horizon]
        if lasting:
            return lasting[-1]
        return await self.open(calendar)

    async def stop(self, channel: Any) -> None:
        """Stop one channel at Google and mark it stopped (Google forgetting it counts)."""
        if channel.resource_id:
            async with self.sessionmaker() as session:
                calendar = await CalendarRepository(session).calendar_by_google_id(
                    channel.org_id, channel.user_id, channel.resource
                )
            user = (
                owner_of(calendar)
                if calendar is not None
                else GoogleUser(org_id=channel.org_id, user_id=channel.user_id)
            )
            await self.google.stop(user, channel.id, channel.resource_id)
        async with self.sessionmaker.begin() as session:
            await CalendarRepository(session).update_channel(
                channel.id, stopped_at=self.clock.now()
            )

    async def stop_all(self, org_id: str, user_id: str) -> int:
        async with self.sessionmaker() as session:
            active = await CalendarRepository(session).active_channels(org_id, user_id)
        for channel in active:
            try:
                await self.stop(channel)
            except Exception:
                log.warning("could not stop channel %s at Google", channel.id, exc_info=True)
                async with self.sessionmaker.begin() as session:
                    await CalendarRepository(session).update_channel(
                        channel.id, stopped_at=self.clock.now()
                    )
        return len(active)

    async def renew_due(self) -> int:
        """Replace every channel expiring within ``renew_before``: new first, then stop old."""
        now = self.clock.now()
        async with self.sessionmaker() as session:
            due = await CalendarRepository(session).channels_expiring(now + self.renew_before)
        renewed = 0
        for old in due:
            async with self.sessionmaker() as session:
                calendar = await CalendarRepository(session).calendar_by_google_id(
                    old.org_id, old.user_id, old.resource
                )
            try:
                if calendar is not None:
                    await self.open(calendar)
                    renewed += 1
            except Exception:
                if old.expires_at > now:
                    log.warning("could not renew channel %s; retrying later", old.id, exc_info=True)
                    continue
                log.warning("channel %s expired and could not be renewed", old.id, exc_info=True)
            try:
                await self.stop(old)
            except Exception:
                log.warning("could not stop channel %s at Google", old.id, exc_info=True)
                async with self.sessionmaker.begin() as session:
                    await CalendarRepository(session).update_channel(old.id, stopped_at=now)
        return renewed
