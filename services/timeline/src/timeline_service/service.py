"""What a viewer sees of an item, the timeline's cache validators, and stream tickets."""

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from pipedesk_common.auth import Principal, Role
from pipedesk_common.clock import Clock
from pipedesk_common.events.timeline import GONE_STATUSES, ItemKind, Link, RecordType
from timeline_service.models import StreamTicket
from timeline_service.repository import Level, ShownItem
from timeline_service.schemas import (
    Hidden,
    HiddenReason,
    ItemSource,
    SeriesPublic,
    TimelineItemPublic,
)

TICKET_LIFETIME = timedelta(seconds=60)
BUSY_TITLE = "Busy"


def next_occurrence(
    recurrence: Mapping[str, Any], first: datetime, as_of: datetime
) -> datetime | None:
    """A series' first occurrence starting at or after ``as_of``, reading its rule from its
    first occurrence in its own zone (python-dateutil's RFC 5545 reader); None when over."""
    try:
        if recurrence.get("all_day"):
            start = datetime.combine(first.astimezone(UTC).date(), time.min)  # floating date
            since = datetime.combine(as_of.astimezone(UTC).date(), time.min)
        else:
            zone = recurrence.get("time_zone")
            start = first.astimezone(ZoneInfo(zone)) if zone else first
            since = as_of
        rules = rrulestr("\n".join(recurrence["rule"]), dtstart=start, forceset=True)
        found = rules.after(since, inc=True)
    except (ValueError, TypeError, KeyError, OverflowError):
        return None
    if not isinstance(found, datetime):
        return None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def as_of_minute(now: datetime) -> datetime:
    """The moment a series' next occurrence is counted from: the current minute."""
    return now.replace(second=0, microsecond=0)


def present(
    item: ShownItem, links: Sequence[tuple[str, str]], as_of: datetime
) -> TimelineItemPublic:
    """The item as its viewer may see it, from the copy they are shown at their level of it
    (decided in SQL with the page, so the search and the page agree); a series with its next
    occurrence from ``as_of``."""
    title: str = item.title
    summary = item.summary
    participants = list(item.participants)
    google_id, url = item.google_id, item.url
    hidden: Hidden | None = None
    if item.level is Level.BUSY:
        title, summary, participants, google_id, url = BUSY_TITLE, None, [], None, None
        fields = ["title", "summary", "participants", "source.google_id", "source.url"]
        hidden = Hidden(reason=HiddenReason.PRIVATE, fields=fields)
    elif item.level is Level.METADATA:
        title, summary = ItemKind(item.kind).value.capitalize(), None
        hidden = Hidden(reason=HiddenReason.MAILBOX_METADATA_ONLY, fields=["title", "summary"])
    elif item.level is Level.SUBJECT:
        summary = None
        hidden = Hidden(reason=HiddenReason.MAILBOX_SUBJECT_ONLY, fields=["summary"])
    return TimelineItemPublic(
        id=item.id,
        kind=ItemKind(item.kind),
        occurred_at=item.occurred_at,
        title=title,
        summary=summary,
        participants=participants,
        status=item.status,
        actor_id=item.actor_id,
        source=ItemSource(service=item.source_service, google_id=google_id, url=url),
        links=[Link(type=RecordType(kind), id=ident) for kind, ident in links],
        series=_series(item, as_of),
        hidden=hidden,
    )


def _series(item: ShownItem, as_of: datetime) -> SeriesPublic | None:
    recurrence = item.recurrence
    if not recurrence:
        return None
    live = item.status not in GONE_STATUSES
    return SeriesPublic(
        rule=list(recurrence.get("rule", [])),
        time_zone=recurrence.get("time_zone"),
        all_day=bool(recurrence.get("all_day")),
        next_occurrence=next_occurrence(recurrence, item.occurred_at, as_of) if live else None,
    )


def visibility_class(principal: Principal) -> str:
    """Everything about the viewer that changes what they see: identity (own sources, attendee
    address), role and teams (which records they may read)."""
    role = principal.role.value if isinstance(principal.role, Role) else str(principal.role)
    return json.dumps(
        [principal.org_id, principal.sub, (principal.email or "").lower(), role,
         sorted(principal.team_ids)]
    )  # fmt: skip


def entity_tag(
    record_version: int, access_version: int, principal: Principal, query: Mapping[str, Any]
) -> str:
    key = json.dumps(
        [record_version, access_version, visibility_class(principal), query],
        sort_keys=True,
        default=str,
    )
    return 'W/"' + hashlib.sha256(key.encode()).hexdigest()[:40] + '"'


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def principal_document(principal: Principal) -> dict[str, Any]:
    return {
        "sub": principal.sub,
        "email": principal.email,
        "org_id": principal.org_id,
        "role": principal.role.value,
        "team_ids": sorted(principal.team_ids),
    }


async def issue_ticket(
    session: AsyncSession, principal: Principal, record_type: str, record_id: str, clock: Clock
) -> tuple[str, datetime]:
    now = clock.now()
    await session.execute(delete(StreamTicket).where(col(StreamTicket.expires_at) < now))
    token = secrets.token_urlsafe(32)
    expires_at = now + TICKET_LIFETIME
    session.add(
        StreamTicket(
            token_hash=_hash(token),
            org_id=principal.org_id,
            record_type=record_type,
            record_id=record_id,
            principal=principal_document(principal),
            expires_at=expires_at,
        )
    )
    return token, expires_at


async def redeem_ticket(
    session: AsyncSession, token: str, record_type: str, record_id: str, clock: Clock
) -> Principal | None:
    """The ticket's principal, once: a used, expired or foreign ticket redeems nothing."""
    now = clock.now()
    document = await session.scalar(
        update(StreamTicket)
        .where(
            col(StreamTicket.token_hash) == _hash(token),
            col(StreamTicket.record_type) == record_type,
            col(StreamTicket.record_id) == record_id,
            col(StreamTicket.used_at).is_(None),
            col(StreamTicket.expires_at) > now,
        )
        .values(used_at=now)
        .returning(col(StreamTicket.principal))
    )
    if document is None:
        return None
    return Principal(
        sub=document["sub"],
        email=document["email"],
        org_id=document["org_id"],
        role=Role(document["role"]),
        team_ids=frozenset(document["team_ids"]),
    )
