"""Every event carrying a timeline projection becomes (or updates) one item, generically: a new
producer needs no change here."""

from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.clock import Clock
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event, registered_types
from pipedesk_common.events.timeline import TimelineProjection
from pipedesk_common.ids import new_id
from timeline_service.models import TimelineItem, TimelineLink


def timeline_event_models() -> list[type[Any]]:
    """The contracts whose data carries a ``timeline`` projection."""
    return [
        event_type.model
        for event_type in registered_types().values()
        if "timeline" in event_type.model.model_fields
    ]


async def project(session: AsyncSession, event: Event[Any], clock: Clock) -> None:
    projection: TimelineProjection = event.data.timeline
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    values = {
        "org_id": event.org_id,
        "source_key": projection.source.key,
        "kind": projection.kind.value,
        "occurred_at": projection.occurred_at,
        "title": projection.title,
        "summary": projection.summary,
        "participants": sorted({email.lower() for email in projection.participants}),
        "status": projection.status,
        "actor_id": projection.actor_id,
        "source_service": projection.source.service,
        "google_id": projection.source.google_id,
        "url": projection.source.url,
        "visibility": projection.visibility.model_dump(mode="json"),
        "version": projection.version,
        "event_id": event.id,
        "updated_at": clock.now(),
    }
    statement = insert(items).values(id=new_id(), **values)
    item_id = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["org_id", "source_key"],
            set_={name: statement.excluded[name] for name in values},
            where=items.c.version < statement.excluded.version,
        ).returning(items.c.id)
    )
    if item_id is None:
        return  # an older (or the same) version of an item we already show
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    await session.execute(delete(links).where(links.c.item_id == item_id))
    wanted = {(link.type.value, link.id) for link in projection.links}
    if wanted:
        await session.execute(
            insert(links).values(
                [
                    {
                        "item_id": item_id,
                        "record_type": record_type,
                        "record_id": record_id,
                        "org_id": event.org_id,
                        "occurred_at": projection.occurred_at,
                    }
                    for record_type, record_id in sorted(wanted)
                ]
            )
        )


def subscribe_projection(consumer: Consumer, clock: Clock) -> None:
    for model in timeline_event_models():

        async def on_event(session: AsyncSession, event: Event[Any]) -> None:
            await project(session, event, clock)

        consumer.on(model)(on_event)
