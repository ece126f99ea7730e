"""What a service under test published: the events its outbox holds."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import create_async_engine

from pipedesk_common.events import decode_event


async def published(
    database_url: str, outbox: Table, routing_key: str, entity_id: str | UUID
) -> list[dict[str, Any]]:
    """The data of every event with ``routing_key`` written for one entity, oldest first."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(outbox.c.body)
                    .where(outbox.c.routing_key == routing_key)
                    .order_by(outbox.c.id)
                )
            ).all()
    finally:
        await engine.dispose()
    found = [decode_event(row.body).data.model_dump(mode="json") for row in rows]
    return [data for data in found if data["id"] == str(entity_id)]
