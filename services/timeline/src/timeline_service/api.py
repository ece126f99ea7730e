"""A record's timeline, its stream tickets and its live stream, for whoever may read the record.

Whether the caller may read the record is decided first: a record they may not see is 404
before anything else (before a 304, a cursor check or a ticket)."""

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ContextDep, PrincipalDep, ServiceContext
from pipedesk_common.auth import Principal
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    AppError,
    FieldError,
    InvalidCursor,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.events.timeline import ItemKind
from pipedesk_common.moments import Rfc3339
from pipedesk_common.pagination import Page, PageCursor, PageLimit
from pipedesk_common.rbac import Action
from timeline_service.cache import PageCache
from timeline_service.repository import (
    ACL_RECORDS,
    ShownItem,
    Viewer,
    changed_items,
    org_record_exists,
    page_state,
    record_items,
    versions,
    visible_links,
)
from timeline_service.repository import (
    Query as TimelineQuery,
)
from timeline_service.schemas import StreamTicketPublic, TimelineItemPublic, TimelineRecordType
from timeline_service.service import (
    as_of_minute,
    entity_tag,
    issue_ticket,
    present,
    redeem_ticket,
)
from timeline_service.streams import ChangeListener, server_sent_event, wait_for

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/timeline", tags=["timeline"])

STREAM_BATCH = 200
STREAM_QUIET_SECONDS = 15.0
VERSION_HEADER = "Timeline-Version"


async def can_read(
    request: Request, session: AsyncSession, principal: Principal, record_type: str, record_id: str
) -> bool:
    if record_type in ACL_RECORDS:
        replica: AccessReplica = request.app.state.access_replica
        return await replica.can(session, principal, Action.READ, record_type, record_id)
    return await org_record_exists(session, principal.org_id, record_type, record_id)


async def require_readable(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    record_type: TimelineRecordType,
    record_id: UUID,
) -> None:
    if not await can_read(request, session, principal, record_type.value, str(record_id)):
        raise NotFound(f"no such {record_type.value}")


def _matches(if_none_match: str | None, tag: str) -> bool:
    if if_none_match is None:
        return False
    candidates = {part.strip() for part in if_none_match.split(",")}
    return "*" in candidates or tag in candidates or tag.removeprefix("W/") in candidates


async def render_items(
    session: AsyncSession, viewer: Viewer, rows: list[ShownItem], as_of: datetime
) -> list[TimelineItemPublic]:
    links = await visible_links(session, [item.id for item in rows], viewer)
    return [present(item, links.get(item.id, []), as_of) for item in rows]


@router.get(
    "/{record_type}/{record_id}",
    summary="A record's timeline, newest first",
    description=(
        "Meetings, emails, files, tasks, notes and audited changes of a record the "
        "caller may read, merged, each shown as its source's sharing allows. Filters "
        "by kind, time and text; a page at a time: pass `next_cursor` back as "
        "`cursor`. `ETag`/`If-None-Match` answer `304` when nothing changed."
    ),
    response_model=Page[TimelineItemPublic],
    responses={
        **problem_responses(Unauthorized, NotFound, InvalidInput, InvalidCursor),
        304: {"description": "Not modified: the `If-None-Match` ETag is current"},
    },
)
async def record_timeline(
    record_type: TimelineRecordType,
    record_id: UUID,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    request: Request,
    kinds: Annotated[list[ItemKind], Query(description="Only these kinds")] = [],  # noqa: B006
    since: Annotated[Rfc3339 | None, Query(description="Occurred at or after")] = None,
    until: Annotated[Rfc3339 | None, Query(description="Occurred before")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Text in title or summary")
    ] = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
    if_none_match: Annotated[str | None, Header(max_length=2048)] = None,
) -> Response:
    await require_readable(request, session, principal, record_type, record_id)
    if since is not None and until is not None and since >= until:
        raise InvalidInput(
            "since must be before until",
            errors=[FieldError(field="query.until", message="must be after since", code="range")],
        )
    query = TimelineQuery(
        record_type=record_type.value,
        record_id=str(record_id),
        kinds=sorted({kind.value for kind in kinds}),
        since=since,
        until=until,
        text=q,
    )
    described = {
        "record": [query.record_type, query.record_id],
        "kinds": list(query.kinds),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "q": q,
    }
    scope = "timeline:" + repr(sorted(described.items()))
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    record_version, access_version, series = await page_state(
        session, principal.org_id, query.record_type, query.record_id
    )
    validated: dict[str, Any] = {**described, "limit": limit, "cursor": cursor}
    as_of = as_of_minute(context.clock.now())
    if series:
        # A series' next occurrence moves on with time: the page is as of this minute.
        validated["as_of"] = as_of.isoformat()
    tag = entity_tag(record_version, access_version, principal, validated)
    headers = {
        "ETag": tag,
        "Cache-Control": "private, no-cache",
        VERSION_HEADER: str(record_version),
        "Vary": "Authorization",
    }
    if _matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    cache: PageCache = request.app.state.page_cache
    body = await cache.get(tag)
    if body is None:
        viewer = Viewer(principal)
        rows = await record_items(session, query, viewer, after=after, limit=limit + 1)
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = context.cursors.encode_keyset(last.occurred_at, last.id, scope=scope)
        items = await render_items(session, viewer, page, as_of)
        page_body = Page[TimelineItemPublic](items=items, next_cursor=next_cursor)
        body = page_body.model_dump_json().encode()
        await cache.put(tag, body)
    return Response(content=body, media_type="application/json", headers=headers)


@router.post(
    "/{record_type}/{record_id}/stream-ticket",
    summary="A single-use ticket, valid 60 s, to open the record's live stream",
    description=(
        "An `EventSource` cannot send a bearer token: this ticket, passed as "
        "`ticket`, opens the record's stream once, within 60 seconds, for the caller."
    ),
    status_code=201,
    responses=problem_responses(Unauthorized, NotFound, InvalidInput),
)
async def create_stream_ticket(
    record_type: TimelineRecordType,
    record_id: UUID,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    request: Request,
) -> StreamTicketPublic:
    await require_readable(request, session, principal, record_type, record_id)
    token, expires_at = await issue_ticket(
        session, principal, record_type.value, str(record_id), context.clock
    )
    return StreamTicketPublic(
        ticket=token,
        expires_at=expires_at,
        stream_url=f"/api/timeline/{record_type.value}/{record_id}/stream?ticket={token}",
    )


def _resume_point(header: str | None, parameter: int | None) -> int | None:
    if header is None or not header.strip():
        return parameter
    # ASCII digits only: str.isdigit() also holds for "²", which int() refuses.
    if not header.strip().isascii() or not header.strip().isdigit() or len(header.strip()) > 18:
        raise InvalidInput(
            "Last-Event-ID must be an event id of this stream",
            errors=[
                FieldError(field="header.last-event-id", message="not an event id", code="int")
            ],
        )
    return int(header.strip())


@router.get(
    "/{record_type}/{record_id}/stream",
    summary="Server-Sent Events: the record's new and updated items, as they arrive",
    description=(
        "Opened with a ticket from `stream-ticket` (no bearer token); each event "
        "carries an item as the timeline lists it, and `Last-Event-ID` resumes after "
        "a reconnect. Closes when the caller may no longer read the record."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        **problem_responses(Unauthorized, NotFound, InvalidInput, ServiceUnavailable),
    },
)
async def record_stream(
    record_type: TimelineRecordType,
    record_id: UUID,
    context: ContextDep,
    request: Request,
    ticket: Annotated[str | None, Query(max_length=200)] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, le=10**18, description="Resume after this event id (as `Last-Event-ID`)"),
    ] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=40, pattern=r"^[0-9]{1,18}$")
    ] = None,
) -> StreamingResponse:
    resume = _resume_point(last_event_id_header, last_event_id)
    if not ticket:
        raise Unauthorized("a stream needs a ticket from POST …/stream-ticket")
    async with context.sessionmaker() as session, session.begin():
        principal = await redeem_ticket(
            session, ticket, record_type.value, str(record_id), context.clock
        )
    if principal is None:
        raise Unauthorized("the stream ticket is unknown, used, expired or for another record")
    async with context.sessionmaker() as session, session.begin():
        await require_readable(request, session, principal, record_type, record_id)
        current, _ = await versions(session, principal.org_id, record_type.value, str(record_id))
    query = TimelineQuery(record_type=record_type.value, record_id=str(record_id))
    events = _events(request, context, principal, query, current if resume is None else resume)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _next_changes(
    request: Request,
    context: ServiceContext,
    principal: Principal,
    viewer: Viewer,
    query: TimelineQuery,
    last: int,
) -> tuple[list[tuple[ShownItem, int]] | None, list[TimelineItemPublic]]:
    """The changes after ``last`` as the viewer sees them; None once they may not read the
    record any more."""
    async with context.sessionmaker() as session, session.begin():
        if not await can_read(request, session, principal, query.record_type, query.record_id):
            return None, []
        batch = await changed_items(session, query, viewer, after_version=last, limit=STREAM_BATCH)
        if len(batch) == STREAM_BATCH:
            # Never split the items of one change between batches: ids are per change.
            top = batch[-1][1]
            batch = [row for row in batch if row[1] < top] or await changed_items(
                session, query, viewer, after_version=top - 1, limit=None, up_to=top
            )
        as_of = as_of_minute(context.clock.now())
        return batch, await render_items(session, viewer, [item for item, _ in batch], as_of)


async def _events(
    request: Request,
    context: ServiceContext,
    principal: Principal,
    query: TimelineQuery,
    last: int,
) -> AsyncIterator[bytes]:
    listener: ChangeListener = request.app.state.change_listener
    viewer = Viewer(principal)
    key = (principal.org_id, query.record_type, query.record_id)
    with listener.subscribe(key) as wake:
        yield b"retry: 2000\n\n"
        yield server_sent_event(f'{{"version": {last}}}', event="ready", event_id=last)
        while True:
            wake.clear()
            try:
                batch, items = await _next_changes(request, context, principal, viewer, query, last)
            except (AppError, SQLAlchemyError, OSError):
                # The client resumes from its Last-Event-ID with a new ticket.
                log.warning("ending a timeline stream on a failed read", exc_info=True)
                yield server_sent_event('{"reason": "unavailable"}', event="end")
                return
            if batch is None:
                yield server_sent_event('{"reason": "access"}', event="end")
                return
            for index, (item, (_, version)) in enumerate(zip(items, batch, strict=True)):
                closes_change = index + 1 == len(batch) or batch[index + 1][1] != version
                yield server_sent_event(
                    item.model_dump_json(),
                    event="item",
                    event_id=version if closes_change else None,
                )
                last = version
            if batch:
                continue
            if not await wait_for(wake, STREAM_QUIET_SECONDS):
                yield b": keep-alive\n\n"
