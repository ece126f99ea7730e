"""One item a sync cannot store is skipped, the sync goes on, and the account's sync health
records it (real PostgreSQL: the database itself refuses the item)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import ManualClock
from pipedesk_common.events.calendar import CalendarSyncStateChanged
from pipedesk_common.events.sync import SyncState
from pipedesk_common.google.resources import GoogleResource, Page, SkippedItem
from pipedesk_common.mirror.health import SyncHealth
from pipedesk_common.mirror.paged import PagedSync, skip, skipped_items
from pipedesk_common.uow import UnitOfWork

pytestmark = pytest.mark.asyncio


class Item(GoogleResource):
    id: str
    label: str


@pytest_asyncio.fixture
async def labels(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[str]:
    """A table of the test's own whose ``label`` holds at most 8 characters."""
    name = f"common_tests.labels_{uuid4().hex[:8]}"
    async with sessions.begin() as session:
        await session.execute(text(f"CREATE TABLE {name} (id text PRIMARY KEY, label varchar(8))"))
    try:
        yield name
    finally:
        async with sessions.begin() as session:
            await session.execute(text(f"DROP TABLE {name}"))


async def test_an_item_the_database_refuses_is_skipped_and_the_sync_goes_on(
    sessions: async_sessionmaker[AsyncSession], common_schema: Any, labels: str
) -> None:
    uow = UnitOfWork(sessions)
    pages = [
        Page(
            [
                Item(id="a", label="first"),
                Item(id="b", label="far too long a label"),
                Item(id="c", label="third"),
            ],
            "p2",
        ),
        Page([Item(id="d", label="fourth")], next_sync_token="token-2"),
    ]
    finished: list[str | None] = []

    async def fetch(token: str | None) -> Page[Item]:
        return pages[0] if token is None else pages[1]

    async def apply(session: AsyncSession, item: Item) -> None:
        await session.execute(
            text(f"INSERT INTO {labels} (id, label) VALUES (:id, :label)"),
            {"id": item.id, "label": item.label},
        )

    async def finish(session: AsyncSession, last: Page[Item]) -> None:
        finished.append(last.next_sync_token)

    with skipped_items() as skipped:
        listed = await PagedSync[Item]("probe", uow).read(
            full=True, fetch=fetch, apply=apply, finish=finish
        )
    assert (listed.pages, listed.items) == (2, 4)
    assert finished == ["token-2"]  # the watermark moved on
    async with uow.read() as session:
        stored = (await session.execute(text(f"SELECT id FROM {labels} ORDER BY id"))).scalars()
        assert list(stored) == ["a", "c", "d"]
    assert [item.id for item in skipped] == ["b"]
    assert "far too long" not in skipped[0].reason  # why, never the content

    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    health = SyncHealth(
        "probe",
        common_schema.sync_health,
        common_schema.outbox,
        uow,
        clock,
        CalendarSyncStateChanged,
    )
    org_id, user_id = f"org-{uuid4().hex[:8]}", "user-1"
    await health.succeeded(org_id, user_id, skipped=skipped)
    table = common_schema.sync_health
    async with uow.read() as session:
        row = (
            await session.execute(
                select(table).where(table.c.org_id == org_id, table.c.user_id == user_id)
            )
        ).one()
    assert row.state == SyncState.IDLE
    assert row.last_success_at == clock.now()
    assert row.last_error_type == "urn:pipedesk:problem:sync-items-skipped"
    assert row.last_error_message == ("1 item from Google could not be stored and was skipped: b")
    await health.succeeded(org_id, user_id)  # a clean run clears it
    async with uow.read() as session:
        row = (await session.execute(select(table).where(table.c.org_id == org_id))).one()
    assert row.last_error_type is None


async def test_a_page_is_written_at_once_and_item_by_item_only_when_an_item_is_refused(
    sessions: async_sessionmaker[AsyncSession], labels: str
) -> None:
    uow = UnitOfWork(sessions)
    written_at_once: list[list[str]] = []
    written_alone: list[str] = []

    async def pages() -> AsyncIterator[Page[Item]]:
        yield Page([Item(id="a", label="first"), Item(id="b", label="far too long a label")])
        yield Page([Item(id="c", label="third"), Item(id="d", label="fourth")])

    async def insert(session: AsyncSession, item: Item) -> None:
        await session.execute(
            text(f"INSERT INTO {labels} (id, label) VALUES (:id, :label)"),
            {"id": item.id, "label": item.label},
        )

    async def apply(session: AsyncSession, item: Item) -> None:
        written_alone.append(item.id)
        await insert(session, item)

    async def apply_all(session: AsyncSession, items: list[Item]) -> None:
        written_at_once.append([item.id for item in items])
        for item in items:
            # Reported once the page is written, not for an attempt that is undone.
            skip("probe", SkippedItem(id=item.id, reason="read in part", partial=True))
            await insert(session, item)

    async def finish(session: AsyncSession, last: Page[Item]) -> None:
        pass

    with skipped_items() as skipped:
        listed = await PagedSync[Item]("probe", uow).read_pages(
            full=True, pages=pages(), apply=apply, finish=finish, apply_all=apply_all
        )
    assert (listed.pages, listed.items) == (2, 4)
    assert written_at_once == [["a", "b"], ["c", "d"]]
    assert written_alone == ["a", "b"]
    async with uow.read() as session:
        stored = (await session.execute(text(f"SELECT id FROM {labels} ORDER BY id"))).scalars()
        assert list(stored) == ["a", "c", "d"]
    assert [(item.id, item.partial) for item in skipped] == [
        ("b", False),
        ("c", True),
        ("d", True),
    ]


async def test_a_listing_that_fails_keeps_the_pages_written_and_no_watermark(
    sessions: async_sessionmaker[AsyncSession], labels: str
) -> None:
    uow = UnitOfWork(sessions)
    finished: list[Page[Item]] = []

    async def pages() -> AsyncIterator[Page[Item]]:
        yield Page([Item(id="a", label="first")])
        raise ConnectionError("Google went away")

    async def apply(session: AsyncSession, item: Item) -> None:
        await session.execute(
            text(f"INSERT INTO {labels} (id, label) VALUES (:id, :label)"),
            {"id": item.id, "label": item.label},
        )

    async def finish(session: AsyncSession, last: Page[Item]) -> None:
        finished.append(last)

    with pytest.raises(ConnectionError):
        await PagedSync[Item]("probe", uow).read_pages(
            full=False, pages=pages(), apply=apply, finish=finish
        )
    assert finished == []
    async with uow.read() as session:
        stored = (await session.execute(text(f"SELECT id FROM {labels}"))).scalars()
        assert list(stored) == ["a"]
