"""The matching locks: what the handlers of one org's events wait for, and what they never do."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from pipedesk_common.db import create_sessionmaker
from timeline_service.projection import lock_matching, lock_org

pytestmark = pytest.mark.asyncio

Take = Callable[[AsyncSession], object]


@pytest_asyncio.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(database_url, pool_size=3)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def holding(sessions: async_sessionmaker[AsyncSession], take: Take) -> AsyncIterator[None]:
    """A transaction holding the locks ``take`` takes, until the block ends."""
    async with sessions() as session, session.begin():
        await take(session)  # type: ignore[misc]
        yield


async def waits(sessions: async_sessionmaker[AsyncSession], take: Take) -> bool:
    """Whether ``take`` must wait, in a transaction of its own: PostgreSQL's lock_timeout ends
    the wait at once, so nothing here depends on how long anything takes."""
    async with sessions() as session, session.begin():
        await session.execute(text("SET LOCAL lock_timeout = '1ms'"))
        try:
            await take(session)  # type: ignore[misc]
        except DBAPIError as refused:
            if "lock timeout" not in str(refused.orig):
                raise
            return True
    return False


async def test_one_thing_matched_waits_and_other_orgs_and_other_things_do_not(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    def copy(org: str, source: str, *emails: str) -> Take:
        return lambda s: lock_matching(s, org, subjects=[("source", source)], emails=emails)

    async with holding(sessions, copy("org-a", "gmail:m1", "x@acme.test", "y@acme.test")):
        # The same copy, or an address it matches through, in the same org: it waits.
        assert await waits(sessions, copy("org-a", "gmail:m1"))
        assert await waits(sessions, lambda s: lock_matching(s, "org-a", emails=["y@acme.test"]))
        assert await waits(
            sessions,
            lambda s: lock_matching(
                s, "org-a", subjects=[("contact", "c1")], emails=["x@acme.test"]
            ),
        )
        # Unrelated copies and addresses of the org, and another org's same ones: they do not.
        assert not await waits(sessions, copy("org-a", "gmail:m2", "z@acme.test"))
        assert not await waits(sessions, copy("org-b", "gmail:m1", "x@acme.test"))
        # Nor does any other event's handler of the org, which holds the org's lock shared.
        assert not await waits(sessions, lambda s: lock_matching(s, "org-a"))
        # The lifecycle's erasures of the org wait for every one of them; another org's do not.
        assert await waits(sessions, lambda s: lock_org(s, "org-a"))
        assert not await waits(sessions, lambda s: lock_org(s, "org-b"))
    async with holding(sessions, lambda s: lock_org(s, "org-a")):
        assert await waits(sessions, lambda s: lock_matching(s, "org-a"))
        assert not await waits(sessions, copy("org-b", "gmail:m1", "x@acme.test"))
