"""Renewing push channels is counted by outcome, so an alert sees renewals failing well before a
channel lapses (``pipedesk_push_channel_renewals_total``). Stopping a user's channels strictly
(a deactivation) keeps a channel Google was unavailable to stop, to stop it again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from pipedesk_common.clock import ManualClock
from pipedesk_common.google.accounts import AccountsUnavailable
from pipedesk_common.google.calls import GoogleQuotaExhausted
from pipedesk_common.google.credentials import GoogleUser
from pipedesk_common.google.push import OpenedChannel, PushChannels, channels_table

pytestmark = pytest.mark.asyncio

# The calendar service's channels table, as its migrations made it in the run's database. The
# clock starts long before any other test's channels, so none of theirs is ever due here.
TABLE = channels_table(MetaData(schema="calendar"))
START = datetime(2001, 1, 1, 9, 0, tzinfo=UTC)


def renewals(outcome: str) -> float:
    value = REGISTRY.get_sample_value("pipedesk_push_channel_renewals_total", {"outcome": outcome})
    return value or 0.0


class FlakyGoogle:
    """Answers watch requests until told to fail; records stops."""

    def __init__(self) -> None:
        self.failing = False
        self.stopped: list[str] = []
        self.stop_error: Exception | None = None

    async def watch(
        self, user: GoogleUser, resource: str, channel_id: str, token: str, ttl: int
    ) -> OpenedChannel:
        if self.failing:
            raise ConnectionError("Google is unreachable")
        return OpenedChannel(resource_id=f"res-{channel_id}", expiration=None)

    async def stop(self, user: GoogleUser, channel_id: str, resource_id: str) -> None:
        if self.stop_error is not None:
            raise self.stop_error
        self.stopped.append(channel_id)


@pytest_asyncio.fixture
async def channels(database_url: str) -> AsyncIterator[tuple[PushChannels, FlakyGoogle]]:
    engine = create_async_engine(database_url)
    google = FlakyGoogle()
    try:
        yield (
            PushChannels(
                TABLE,
                async_sessionmaker(engine, expire_on_commit=False),
                ManualClock(START),
                secret=b"s" * 32,
                ttl=timedelta(hours=1),
                renew_before=timedelta(minutes=10),
                watch=google.watch,
                stop=google.stop,
            ),
            google,
        )
    finally:
        await engine.dispose()


async def test_renewals_are_counted_renewed_failed_and_lapsed(
    channels: tuple[PushChannels, FlakyGoogle],
) -> None:
    push, google = channels
    clock = push.clock
    assert isinstance(clock, ManualClock)
    user = GoogleUser(org_id=f"org-{uuid.uuid4().hex[:8]}", user_id="u1", email="u1@example.com")
    before = {outcome: renewals(outcome) for outcome in ("renewed", "failed", "lapsed")}

    first = await push.open(user, "primary")
    clock.advance(timedelta(minutes=55))
    assert await push.renew_due() == 1
    assert google.stopped == [first.id]

    clock.advance(timedelta(minutes=55))
    google.failing = True
    assert await push.renew_due() == 0  # due, still alive: retried on the next run
    assert await push.active(user.org_id, user.user_id) != []

    clock.advance(timedelta(minutes=10))  # now expired, and still not renewable
    assert await push.renew_due() == 0
    assert await push.active(user.org_id, user.user_id) == []

    assert renewals("renewed") - before["renewed"] == 1
    assert renewals("failed") - before["failed"] == 1
    assert renewals("lapsed") - before["lapsed"] == 1


async def test_a_strict_stop_keeps_a_channel_google_was_unavailable_to_stop(
    channels: tuple[PushChannels, FlakyGoogle],
) -> None:
    push, google = channels
    user = GoogleUser(org_id=f"org-{uuid.uuid4().hex[:8]}", user_id="u1", email="u1@example.com")
    opened = await push.open(user, "primary")

    google.stop_error = GoogleQuotaExhausted("Google answered 503")
    with pytest.raises(GoogleQuotaExhausted):
        await push.stop_all(user.org_id, user.user_id, strict=True)
    assert [channel.id for channel in await push.active(user.org_id, user.user_id)] == [opened.id]

    google.stop_error = None
    assert await push.stop_all(user.org_id, user.user_id, strict=True) == 1
    assert google.stopped == [opened.id]
    assert await push.active(user.org_id, user.user_id) == []
    assert await push.stop_all(user.org_id, user.user_id, strict=True) == 0


async def test_a_strict_stop_without_credentials_marks_the_channel_stopped(
    channels: tuple[PushChannels, FlakyGoogle],
) -> None:
    push, google = channels
    user = GoogleUser(org_id=f"org-{uuid.uuid4().hex[:8]}", user_id="u1", email="u1@example.com")
    await push.open(user, "primary")
    google.stop_error = AccountsUnavailable("the accounts service answered 403")
    assert await push.stop_all(user.org_id, user.user_id, strict=True) == 1
    assert await push.active(user.org_id, user.user_id) == []
    assert google.stopped == []
