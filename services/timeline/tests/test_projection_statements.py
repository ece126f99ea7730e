"""What projecting an event costs the database: statements built and compiled once, and each
record it changes touched (version, links' stamps, notification) in one statement."""

import asyncio
import json
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from pipedesk_common.clock import SystemClock
from pipedesk_common.db import connect_raw, create_sessionmaker
from pipedesk_common.events import decode_event
from pipedesk_common.events.timeline import TimelineCarrier
from timeline_service.projection import CHANGES_CHANNEL, project

pytestmark = pytest.mark.asyncio


async def test_an_item_is_projected_with_statements_compiled_once_and_its_record_touched_in_one(
    feed: Any, database_url: str
) -> None:
    engine = create_async_engine(database_url)
    executed: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, _p: Any, context: Any, _m: Any) -> None:
        executed.append((statement, context.cache_hit))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    listener = await connect_raw(database_url)
    notified: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(CHANGES_CHANNEL, lambda *args: notified.put_nowait(args[-1]))
    lead_id = str(uuid4())
    sessions = create_sessionmaker(engine)
    try:
        # The first item compiles what the projection runs; the second finds it all compiled.
        for key in ("meeting-1", "meeting-2"):
            executed.clear()
            raw = feed.item(key, links=[("lead", lead_id)])
            projected = decode_event(raw.body, unregistered=TimelineCarrier)
            async with sessions() as session, session.begin():
                await project(session, projected, SystemClock())
        compiled_again = [sql for sql, hit in executed if hit != engine.dialect.CACHE_HIT]
        assert compiled_again == []
        # The matching locks, the copy held, the new item, its copy, its link, and the lead
        # touched: its version bumped, the link stamped and the change notified, at once.
        assert len(executed) == 6
        payloads = [json.loads(await notified.get()) for _ in range(2)]
        async with engine.connect() as connection:
            stamps = (
                await connection.execute(
                    text(
                        "SELECT h.source_key, l.change_version FROM timeline.links l "
                        "JOIN timeline.holders h ON h.item_id = l.item_id "
                        "WHERE l.org_id = :org AND l.record_id = :lead ORDER BY 1"
                    ),
                    {"org": feed.org_id, "lead": lead_id},
                )
            ).all()
            version = await connection.scalar(
                text(
                    "SELECT version FROM timeline.record_versions "
                    "WHERE org_id = :org AND record_type = 'lead' AND record_id = :lead"
                ),
                {"org": feed.org_id, "lead": lead_id},
            )
        # Each item's link carries the record's version its change made, which its
        # notification named.
        assert payloads == [[feed.org_id, "lead", lead_id, 1], [feed.org_id, "lead", lead_id, 2]]
        assert [tuple(row) for row in stamps] == [
            ("calendar:meeting-1", 1),
            ("calendar:meeting-2", 2),
        ]
        assert version == 2
    finally:
        await listener.close()
        await engine.dispose()
