"""Events this service consumes besides CRM's access lists: a user's Google connection ending."""

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from calendar_service.models import UserCalendar, channels, work_requests
from calendar_service.sync import sync_key
from pipedesk_common.clock import Clock
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.accounts import GoogleConnectionData, GoogleDisconnected, GoogleRevoked
from pipedesk_common.google.push import forget_user_channels


async def forget_push(session: AsyncSession, clock: Clock, org_id: str, user_id: str) -> None:
    """The user's Google access is gone: their channels are stopped (Google can no longer be
    asked to: notifications still arriving are ignored) and their pending syncs dropped."""
    await forget_user_channels(session, channels, clock, org_id, user_id)
    calendar_ids = (
        await session.scalars(
            select(col(UserCalendar.id)).where(
                col(UserCalendar.org_id) == org_id, col(UserCalendar.user_id) == user_id
            )
        )
    ).all()
    if calendar_ids:
        keys = [sync_key(calendar_id) for calendar_id in calendar_ids]
        await session.execute(delete(work_requests).where(work_requests.c.key.in_(keys)))


def subscribe_connection_events(consumer: Consumer, clock: Clock) -> None:
    @consumer.on(GoogleDisconnected, GoogleRevoked)
    async def on_connection_ended(
        session: AsyncSession, event: Event[GoogleConnectionData]
    ) -> None:
        await forget_push(session, clock, event.org_id, event.data.user_id)
