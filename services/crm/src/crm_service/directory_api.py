"""Org directory routes: users and teams for everyone in the org; changes for admins."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from crm_service.api import CallerDep
from crm_service.directory import Directory
from crm_service.schemas import TeamCreate, TeamPublic, TeamUpdate, UserProvision, UserPublic
from pipedesk_common.app import ContextDep
from pipedesk_common.auth import ServiceCaller
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    Conflict,
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.idempotent import IDEMPOTENCY_PROBLEMS, IDEMPOTENT
from pipedesk_common.ids import OpaqueIdPath, id_path
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.pagination import Page, PageCursor, PageLimit


async def directory(session: SessionDep, context: ContextDep) -> Directory:
    return Directory(session, context.clock)


DirectoryDep = Annotated[Directory, Depends(directory)]
# An id is opaque and may hold "/": the route takes the rest of the path, which arrives
# percent-encoded (``%2F``) and is decoded before routing.
UserIdPath = OpaqueIdPath
TeamIdPath = OpaqueIdPath

users = APIRouter(prefix="/api/users", tags=["directory"])
teams = APIRouter(prefix="/api/teams", tags=["directory"])
internal_users = APIRouter(prefix="/internal/users", tags=["internal"])
# The services deciding about another user: the Google mirrors (an assignee, an attendee) and
# accounts (whom a delegated token may impersonate), gmail (the user an automation sends as),
# automation (whom a notification goes to).
DIRECTORY_CALLERS = ("accounts", "automation", "calendar", "drive", "gmail", "tasks")


@users.get(
    "",
    summary="The users of the caller's org, by id",
    description=(
        "Every user of the org: those who signed in (upserted from their token) and "
        "those pre-provisioned. Filters by team and text in name or email; a page at "
        "a time: pass `next_cursor` back as `cursor`."
    ),
    responses=problem_responses(Unauthorized, InvalidInput, InvalidCursor),
)
async def list_users(
    principal: CallerDep,
    directory: DirectoryDep,
    context: ContextDep,
    team_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[UserPublic]:
    scope = f"users:{team_id!r}:{q!r}"
    after = context.cursors.decode_key(cursor, scope=scope) if cursor else None
    rows = await directory.users(principal, team_id=team_id, q=q, after=after, limit=limit + 1)
    items = [UserPublic.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = context.cursors.encode([items[-1].id], scope=scope)
    return Page[UserPublic](items=items, next_cursor=next_cursor)


@users.get(
    "/{user_id:path}",
    summary="A user of the caller's org",
    description="One user by their id (the token's `sub`); a user of another org is `404`.",
    responses=problem_responses(Unauthorized, NotFound),
)
async def get_user(
    user_id: UserIdPath, principal: CallerDep, directory: DirectoryDep
) -> UserPublic:
    return UserPublic.model_validate(await directory.user(principal.org_id, user_id))


@users.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Pre-provision a user before their first login (admins)",
    description=(
        "Creates a user with an email, role and teams before they first sign in; "
        "their first token then updates them."
    ),
    responses=problem_responses(
        Unauthorized, Forbidden, Conflict, InvalidInput, *IDEMPOTENCY_PROBLEMS
    ),
    dependencies=[IDEMPOTENT],
)
async def provision_user(
    data: UserProvision, principal: CallerDep, directory: DirectoryDep, response: Response
) -> UserPublic:
    user = await directory.provision(principal, data)
    response.headers["Location"] = id_path("/api/users", user.id)
    return UserPublic.model_validate(user)


@teams.get(
    "",
    summary="The teams of the caller's org, by name",
    responses=problem_responses(Unauthorized, InvalidInput, InvalidCursor),
)
async def list_teams(
    principal: CallerDep,
    directory: DirectoryDep,
    context: ContextDep,
    archived: Annotated[bool, Query(description="List archived teams instead")] = False,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[TeamPublic]:
    """Active teams, or archived ones with `archived=true`, ordered by name (then id), a page
    at a time: pass `next_cursor` back as `cursor` until it is null."""
    teams = [
        TeamPublic.model_validate(team)
        for team in await directory.teams(principal, archived=archived)
    ]
    return context.cursors.listed_page(
        teams, limit, cursor, key=lambda team: [team.name, team.id], scope=f"teams:{archived}"
    )


@teams.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a team (admins)",
    description=(
        "A team of the caller's org, with an id of the caller's choosing or a generated one."
    ),
    responses=problem_responses(
        Unauthorized, Forbidden, Conflict, InvalidInput, *IDEMPOTENCY_PROBLEMS
    ),
    dependencies=[IDEMPOTENT],
)
async def create_team(
    data: TeamCreate, principal: CallerDep, directory: DirectoryDep, response: Response
) -> TeamPublic:
    team = await directory.create_team(principal, data)
    response.headers["Location"] = id_path("/api/teams", team.id)
    return TeamPublic.model_validate(team)


@teams.patch(
    "/{team_id}",
    summary="Rename a team (admins)",
    description="Changes a team's name; its id, members and records stay.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput),
)
async def rename_team(
    team_id: TeamIdPath, data: TeamUpdate, principal: CallerDep, directory: DirectoryDep
) -> TeamPublic:
    return TeamPublic.model_validate(await directory.rename_team(principal, team_id, data.name))


@teams.post(
    "/{team_id}/archive",
    summary="Archive a team (admins)",
    description=(
        "An archived team leaves the active list (`GET /api/teams?archived=true` "
        "lists it); archiving it twice is `409`."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict),
)
async def archive_team(
    team_id: TeamIdPath, principal: CallerDep, directory: DirectoryDep
) -> TeamPublic:
    return TeamPublic.model_validate(await directory.archive_team(principal, team_id))


@internal_users.get(
    "/{user_id:path}",
    summary="A user of an org (callers: accounts, automation, calendar, drive, gmail, tasks)",
    responses={**internal_problems(), **problem_responses(NotFound, InvalidInput)},
)
async def internal_user(
    user_id: UserIdPath,
    caller: Annotated[ServiceCaller, Depends(callers(*DIRECTORY_CALLERS))],
    directory: DirectoryDep,
    org_id: Annotated[str, Query(min_length=1, max_length=255, description="The user's org")],
) -> UserPublic:
    return UserPublic.model_validate(await directory.user(org_id, user_id))
