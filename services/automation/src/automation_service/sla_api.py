"""The SLA API: an org's policies (per priority), its business calendars (per team, and the
org's default) and its feature flags. Anyone of the org reads policies and calendars; admins
change policies and flags, admins and a team's managers its calendar. A change recomputes the
due times it touches at once; CRM is told by the ``automation.sla-sync`` job."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from automation_service.flags import FLAGS
from automation_service.sla import recompute_org
from automation_service.sla_models import (
    ORG_DEFAULT,
    PRIORITIES,
    BusinessCalendarRow,
    FeatureFlag,
    SlaPolicy,
)
from pipedesk_common.app import ContextDep, PrincipalDep
from pipedesk_common.auth import Principal, Role, ServiceCaller
from pipedesk_common.contract import BodyInteger
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    FieldError,
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.ids import ID_PATTERN, OpaqueId
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.moments import IsoDate, TimeZoneName
from pipedesk_common.pagination import Page, PageCursor, PageLimit

router = APIRouter(prefix="/api/automation", tags=["automation"])
internal_flags = APIRouter(prefix="/internal/flags", tags=["internal"])

Priority = Literal["low", "normal", "high", "urgent"]
FlagKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        description="A flag the service knows (another key answers `422` naming `path.key`)",
        json_schema_extra={"enum": sorted(FLAGS)},
    ),
]
TeamId = OpaqueId
MINUTES_A_YEAR = 525_600
# The automation service's own token, as the operators' console uses it, sets global flags.
GLOBAL_FLAG_CALLERS = ("automation",)


def invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}", errors=[FieldError(field=field, message=message, code="invalid")]
    )


def admins_only(principal: Principal, what: str) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden(f"only admins {what}")


# --- policies ---------------------------------------------------------------------------------


class PolicyWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_response_minutes: BodyInteger = Field(
        ge=1, le=MINUTES_A_YEAR, description="Business minutes from creation to a first response"
    )
    next_touch_minutes: BodyInteger = Field(
        ge=1, le=MINUTES_A_YEAR, description="Business minutes from one touch to the next"
    )
    warning_minutes: BodyInteger = Field(
        60,
        ge=0,
        le=MINUTES_A_YEAR,
        description="How long (in real time) before the due time the warning goes out; 0: none",
    )
    escalate_to_admins: StrictBool = Field(
        False, description="A breach also notifies the org's admins"
    )


class PolicyPublic(PolicyWrite):
    priority: Priority
    updated_by: str
    updated_at: datetime


@router.get(
    "/sla/policies",
    summary="The org's SLA policies, one per priority that has one",
    description="Readable by anyone of the org. A lead of a priority without a policy has no "
    "SLA (its `sla_due_at` is its users').",
    responses=problem_responses(Unauthorized, InvalidCursor),
)
async def list_policies(
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[PolicyPublic]:
    rows = await session.scalars(select(SlaPolicy).where(col(SlaPolicy.org_id) == principal.org_id))
    found = [PolicyPublic.model_validate(row, from_attributes=True) for row in rows]
    return context.cursors.listed_page(
        found,
        limit,
        cursor,
        key=lambda policy: [str(PRIORITIES.index(policy.priority))],
        scope=f"sla-policies:{principal.org_id}",
    )


@router.put(
    "/sla/policies/{priority}",
    summary="Set the SLA of a priority (admins)",
    description="Times count in the business calendar of each lead's team. The org's leads of "
    "this priority are given their new due time at once. Anyone but an admin: `403`.",
    responses=problem_responses(Unauthorized, Forbidden, InvalidInput),
)
async def put_policy(
    priority: Priority,
    data: PolicyWrite,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
) -> PolicyPublic:
    admins_only(principal, "change the org's SLA policies")
    values = {
        **data.model_dump(),
        "updated_by": principal.sub,
        "updated_at": context.clock.now(),
    }
    statement = insert(SlaPolicy).values(org_id=principal.org_id, priority=priority, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["org_id", "priority"], set_=values)
    )
    await recompute_org(session, principal.org_id, priority=priority)
    return PolicyPublic(priority=priority, **values)


@router.delete(
    "/sla/policies/{priority}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove the SLA of a priority (admins)",
    description="Its leads' due times become their users' again. Anyone but an admin: `403`; "
    "a priority without a policy: `404`.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound),
)
async def delete_policy(
    priority: Priority, principal: PrincipalDep, session: SessionDep
) -> Response:
    admins_only(principal, "change the org's SLA policies")
    removed = await session.scalar(
        delete(SlaPolicy)
        .where(col(SlaPolicy.org_id) == principal.org_id, col(SlaPolicy.priority) == priority)
        .returning(col(SlaPolicy.priority))
    )
    if removed is None:
        raise NotFound(f"no policy for {priority} priority")
    await recompute_org(session, principal.org_id, priority=priority)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- calendars --------------------------------------------------------------------------------

ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class Hours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: ClockTime = Field(description="`HH:MM`, local time")
    end: ClockTime = Field(
        description="`HH:MM`, local time; before `start`, the next day's (a window over "
        "midnight); equal to `start`, the weekday is not worked"
    )


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class BusinessCalendarWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: TimeZoneName = Field(description="An IANA time zone, e.g. `Europe/Paris`")
    week: dict[Weekday, Hours] = Field(
        min_length=1,
        description="The working hours of each working weekday (at least one); a weekday "
        "absent is not worked",
    )
    holidays: list[IsoDate] = Field(
        default_factory=list, max_length=1000, description="Local dates not worked"
    )


class BusinessCalendarPublic(BusinessCalendarWrite):
    team_id: str | None = Field(description="The team; null: the org's default calendar")
    updated_by: str
    updated_at: datetime


def _week(data: BusinessCalendarWrite) -> dict[str, list[str]]:
    return {day: [hours.start, hours.end] for day, hours in data.week.items()}


def _public(row: BusinessCalendarRow) -> BusinessCalendarPublic:
    return BusinessCalendarPublic(
        team_id=row.team_id or None,
        time_zone=row.time_zone,
        week={day: Hours(start=hours[0], end=hours[1]) for day, hours in row.week.items()},
        holidays=sorted(row.holidays),
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def may_set_calendar(principal: Principal, team_id: str) -> None:
    if principal.role is Role.ADMIN:
        return
    if team_id and principal.role is Role.MANAGER and team_id in principal.team_ids:
        return
    raise Forbidden(
        "admins set the org's calendars; managers their own teams'"
        if team_id
        else "only admins set the org's default calendar"
    )


@router.get(
    "/sla/calendars",
    summary="The org's business calendars",
    description="The org's default (`team_id` null) and each team's. Readable by anyone of "
    "the org. A team without one counts in the default; an org without a default, every hour.",
    responses=problem_responses(Unauthorized, InvalidCursor),
)
async def list_calendars(
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[BusinessCalendarPublic]:
    rows = await session.scalars(
        select(BusinessCalendarRow).where(col(BusinessCalendarRow.org_id) == principal.org_id)
    )
    return context.cursors.listed_page(
        [_public(row) for row in rows],
        limit,
        cursor,
        key=lambda calendar: [calendar.team_id or ""],
        scope=f"sla-calendars:{principal.org_id}",
    )


async def _put_calendar(
    team_id: str,
    data: BusinessCalendarWrite,
    principal: Principal,
    session: SessionDep,
    context: ContextDep,
) -> BusinessCalendarPublic:
    may_set_calendar(principal, team_id)
    week = _week(data)
    values = {
        "time_zone": data.time_zone,
        "week": week,
        "holidays": sorted(set(data.holidays)),
        "updated_by": principal.sub,
        "updated_at": context.clock.now(),
    }
    statement = insert(BusinessCalendarRow).values(
        org_id=principal.org_id, team_id=team_id, **values
    )
    await session.execute(
        statement.on_conflict_do_update(index_elements=["org_id", "team_id"], set_=values)
    )
    await session.flush()
    await recompute_org(session, principal.org_id, team_id=team_id)
    row = await session.get(
        BusinessCalendarRow, (principal.org_id, team_id), populate_existing=True
    )
    assert row is not None
    return _public(row)


async def _delete_calendar(team_id: str, principal: Principal, session: SessionDep) -> Response:
    may_set_calendar(principal, team_id)
    removed = await session.scalar(
        delete(BusinessCalendarRow)
        .where(
            col(BusinessCalendarRow.org_id) == principal.org_id,
            col(BusinessCalendarRow.team_id) == team_id,
        )
        .returning(col(BusinessCalendarRow.team_id))
    )
    if removed is None:
        raise NotFound("no such calendar")
    await recompute_org(session, principal.org_id, team_id=team_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


CALENDAR_PROBLEMS = problem_responses(Unauthorized, Forbidden, InvalidInput)


@router.put(
    "/sla/calendars/default",
    summary="Set the org's default business calendar (admins)",
    description="The calendar of every team without one of its own. The due times it touches "
    "are recomputed at once. Anyone but an admin: `403`.",
    responses=CALENDAR_PROBLEMS,
)
async def put_default_calendar(
    data: BusinessCalendarWrite, principal: PrincipalDep, session: SessionDep, context: ContextDep
) -> BusinessCalendarPublic:
    return await _put_calendar(ORG_DEFAULT, data, principal, session, context)


@router.delete(
    "/sla/calendars/default",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove the org's default business calendar (admins)",
    description="Teams without a calendar of their own then count every hour. Anyone but an "
    "admin: `403`; no default calendar: `404`.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound),
)
async def delete_default_calendar(principal: PrincipalDep, session: SessionDep) -> Response:
    return await _delete_calendar(ORG_DEFAULT, principal, session)


@router.put(
    "/sla/calendars/teams/{team_id}",
    summary="Set a team's business calendar (admins, the team's managers)",
    description="The due times of the team's leads are recomputed at once. A manager of "
    "another team, a rep or a viewer: `403`.",
    responses=CALENDAR_PROBLEMS,
)
async def put_team_calendar(
    team_id: Annotated[str, Path(min_length=1, max_length=255, pattern=ID_PATTERN)],
    data: BusinessCalendarWrite,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
) -> BusinessCalendarPublic:
    return await _put_calendar(team_id, data, principal, session, context)


@router.delete(
    "/sla/calendars/teams/{team_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove a team's business calendar (admins, the team's managers)",
    description="The team then counts in the org's default calendar. A manager of another "
    "team, a rep or a viewer: `403`; no such calendar: `404`.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound),
)
async def delete_team_calendar(
    team_id: Annotated[str, Path(min_length=1, max_length=255, pattern=ID_PATTERN)],
    principal: PrincipalDep,
    session: SessionDep,
) -> Response:
    return await _delete_calendar(team_id, principal, session)


# --- flags ------------------------------------------------------------------------------------


class FlagWrite(BaseModel):
    # A team's setting names its team; the org's names none (absent or null).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"properties": {"scope": {"const": "org"}, "team_id": {"type": "null"}}},
                {
                    "properties": {"scope": {"const": "team"}, "team_id": {"type": "string"}},
                    "required": ["team_id"],
                },
            ]
        },
    )

    scope: Literal["org", "team"] = Field(description="The whole org, or one of its teams")
    team_id: TeamId | None = Field(
        None, description="The team, for the `team` scope (required there); none for `org`"
    )
    enabled: StrictBool


class FlagPublic(BaseModel):
    key: str
    scope: Literal["global", "org", "team"]
    team_id: str | None
    enabled: bool
    updated_by: str
    updated_at: datetime


class GlobalFlagWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool


def known_flag(key: str) -> None:
    if key not in FLAGS:
        raise invalid("path.key", f"no such flag (known: {', '.join(sorted(FLAGS))})")


def _flag_public(row: FeatureFlag) -> FlagPublic:
    return FlagPublic(
        key=row.key,
        scope=row.scope,
        team_id=row.team_id or None,
        enabled=row.enabled,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


@router.get(
    "/flags",
    summary="The feature flags that apply to the org (admins)",
    description="The global settings, the org's and its teams'. The narrowest that matches "
    "wins: a team's, then the org's, then the global one; a flag set nowhere is off.",
    responses=problem_responses(Unauthorized, Forbidden, InvalidCursor),
)
async def list_flags(
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[FlagPublic]:
    admins_only(principal, "manage feature flags")
    rows = await session.scalars(
        select(FeatureFlag).where(col(FeatureFlag.org_id).in_([ORG_DEFAULT, principal.org_id]))
    )
    return context.cursors.listed_page(
        [_flag_public(row) for row in rows],
        limit,
        cursor,
        key=lambda flag: [flag.key, flag.scope, flag.team_id or ""],
        scope=f"flags:{principal.org_id}",
    )


@router.put(
    "/flags/{key}",
    summary="Turn a feature flag on or off for the org or one of its teams (admins)",
    description="Takes effect at the next evaluation (the SLA worker's next run), without a "
    "restart. Known flags: " + "; ".join(f"`{key}`: {what}" for key, what in FLAGS.items()),
    responses=problem_responses(Unauthorized, Forbidden, InvalidInput),
)
async def put_flag(
    key: FlagKey,
    data: FlagWrite,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
) -> FlagPublic:
    admins_only(principal, "manage feature flags")
    known_flag(key)
    if data.scope == "team" and data.team_id is None:
        raise invalid("body.team_id", "required for the team scope")
    if data.scope == "org" and data.team_id is not None:
        raise invalid("body.team_id", "only for the team scope")
    row = FeatureFlag(
        key=key,
        scope=data.scope,
        org_id=principal.org_id,
        team_id=data.team_id or "",
        enabled=data.enabled,
        updated_by=principal.sub,
        updated_at=context.clock.now(),
    )
    await session.merge(row)
    return _flag_public(row)


@router.delete(
    "/flags/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove the org's (or a team's) setting of a flag (admins)",
    description="The next wider setting applies again.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput),
)
async def delete_flag(
    key: FlagKey,
    principal: PrincipalDep,
    session: SessionDep,
    team_id: Annotated[str | None, Query(min_length=1, max_length=255, pattern=ID_PATTERN)] = None,
) -> Response:
    admins_only(principal, "manage feature flags")
    known_flag(key)
    removed = await session.scalar(
        delete(FeatureFlag)
        .where(
            col(FeatureFlag.key) == key,
            col(FeatureFlag.scope) == ("team" if team_id else "org"),
            col(FeatureFlag.org_id) == principal.org_id,
            col(FeatureFlag.team_id) == (team_id or ""),
        )
        .returning(col(FeatureFlag.key))
    )
    if removed is None:
        raise NotFound("no such setting")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@internal_flags.put(
    "/{key}",
    summary="Set a flag for every org (callers: automation, the operators' console)",
    description="An org's or a team's own setting still wins over it.",
    responses={**internal_problems(), **problem_responses(InvalidInput)},
)
async def put_global_flag(
    key: FlagKey,
    data: GlobalFlagWrite,
    caller: Annotated[ServiceCaller, Depends(callers(*GLOBAL_FLAG_CALLERS))],
    session: SessionDep,
    context: ContextDep,
) -> FlagPublic:
    known_flag(key)
    row = FeatureFlag(
        key=key,
        scope="global",
        org_id="",
        team_id="",
        enabled=data.enabled,
        updated_by=f"svc:{caller.name}",
        updated_at=context.clock.now(),
    )
    await session.merge(row)
    return _flag_public(row)
