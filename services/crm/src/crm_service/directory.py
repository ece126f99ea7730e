"""The org directory: users (id = the token's ``sub``) and teams.

The identity provider is authoritative for a user's role and teams: the caller is upserted from
their token on each request, so a user exists from their first call and the newest token wins.
Admins create, rename and archive teams and may pre-provision users before their first login.
Decisions about another user (a new owner, a member) read the directory, never a token.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from crm_service.audit import act_as
from crm_service.models import GoogleDataDeletionJob, Team, User
from crm_service.repository import escape_like
from crm_service.schemas import TeamCreate, UserProvision
from pipedesk_common.auth import Principal, Role
from pipedesk_common.clock import Clock
from pipedesk_common.errors import Conflict, Forbidden, NotFound
from pipedesk_common.ids import new_id
from pipedesk_common.signin import OFFBOARDED_DETAIL, OrgOffboarded, UserDeactivated


async def active_user(session: AsyncSession, org_id: str, user_id: str) -> User | None:
    user = await session.get(User, (org_id, user_id))
    return user if user is not None and user.active else None


def _offboardings_in_force() -> Any:
    """The org offboardings whose org was not onboarded again (running or completed)."""
    return select(col(GoogleDataDeletionJob.org_id), col(GoogleDataDeletionJob.status)).where(
        col(GoogleDataDeletionJob.scope) == "org",
        col(GoogleDataDeletionJob.reonboarded_at).is_(None),
    )


def _offboarding_of(statuses: Sequence[str]) -> str | None:
    if not statuses:
        return None
    return "running" if any(status == "running" for status in statuses) else "completed"


async def offboarding_status(session: AsyncSession, org_id: str) -> str | None:
    """``running`` or ``completed`` while the org is offboarded (its job started and no
    operator onboarded it again); None otherwise."""
    statuses = (
        await session.execute(
            _offboardings_in_force().where(col(GoogleDataDeletionJob.org_id) == org_id)
        )
    ).all()
    return _offboarding_of([status for _, status in statuses])


def _caller_and_offboarding_statement() -> Any:
    statuses = (
        select(func.array_agg(col(GoogleDataDeletionJob.status)))
        .where(
            col(GoogleDataDeletionJob.scope) == "org",
            col(GoogleDataDeletionJob.reonboarded_at).is_(None),
            col(GoogleDataDeletionJob.org_id) == bindparam("org_id"),
        )
        .scalar_subquery()
    )
    one = select(literal(1).label("one")).subquery()
    return (
        select(statuses, User)
        .select_from(one)
        .outerjoin(
            User, and_(col(User.org_id) == bindparam("org_id"), col(User.id) == bindparam("sub"))
        )
    )


# Built once: every request runs it first, and building it (and its cache key) anew each time
# cost more CPU than the database takes to answer it.
_CALLER_AND_OFFBOARDING = _caller_and_offboarding_statement()


async def _caller_and_offboarding(
    session: AsyncSession, principal: Principal
) -> tuple[User | None, str | None]:
    """The caller's directory entry and their org's ``offboarding_status``, in one statement."""
    found, user = (
        await session.execute(
            _CALLER_AND_OFFBOARDING, {"org_id": principal.org_id, "sub": principal.sub}
        )
    ).one()
    return user, _offboarding_of(found or [])


async def offboarded_orgs(session: AsyncSession) -> list[str]:
    """Every org offboarded and not onboarded again, for every service to refuse."""
    rows = (await session.execute(_offboardings_in_force())).all()
    return sorted({str(org_id) for org_id, _ in rows})


async def upsert_caller(
    session: AsyncSession, principal: Principal, clock: Clock, *, resuming_offboarding: bool = False
) -> User:
    """Make the directory agree with the caller's token (a write only when something changed);
    a deactivated user is refused (``403 user-deactivated``), and so is every user of an
    offboarded org (``403 org-offboarded``): nothing of the org is written again. Only the
    request resuming the org's unfinished offboarding (``resuming_offboarding``) passes."""
    user, offboarding = await _caller_and_offboarding(session, principal)
    if offboarding is not None and not (resuming_offboarding and offboarding == "running"):
        raise OrgOffboarded(OFFBOARDED_DETAIL)
    act_as(session, principal, clock)
    if user is not None and not user.active:
        raise UserDeactivated(
            "this user was deactivated in the org directory; an admin may reactivate them"
        )
    if user is None:
        now = clock.now()
        user = User(
            org_id=principal.org_id,
            id=principal.sub,
            email=principal.email.lower(),
            role=principal.role.value,
            team_ids=sorted(principal.team_ids),
            created_at=now,
            updated_at=now,
            version=1,
        )
        try:
            async with session.begin_nested():
                session.add(user)
        except IntegrityError:  # a concurrent first request of the same user inserted it
            found = await session.get(User, (principal.org_id, principal.sub))
            assert found is not None
            user = found
        else:
            return user
    wanted = {
        "email": principal.email.lower(),
        "role": principal.role.value,
        "team_ids": sorted(principal.team_ids),
    }
    if any(getattr(user, name) != value for name, value in wanted.items()):
        await session.refresh(user, with_for_update=True)
        for name, value in wanted.items():
            setattr(user, name, value)
        user.updated_at = clock.now()
        user.version += 1
        await session.flush()
    return user


def _admin_only(principal: Principal, what: str) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden(f"only an admin may {what}")


class Directory:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def users(
        self,
        principal: Principal,
        *,
        team_id: str | None,
        q: str | None,
        after: str | None,
        limit: int,
    ) -> list[User]:
        query = select(User).where(col(User.org_id) == principal.org_id)
        if team_id is not None:
            query = query.where(col(User.team_ids).contains([team_id]))
        if q:
            pattern = f"%{escape_like(q)}%"
            query = query.where(
                or_(
                    col(User.email).ilike(pattern, escape="\\"),
                    col(User.name).ilike(pattern, escape="\\"),
                )
            )
        if after is not None:
            query = query.where(col(User.id) > after)
        query = query.order_by(col(User.id)).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def user(self, org_id: str, user_id: str) -> User:
        user = await self.session.get(User, (org_id, user_id))
        if user is None:
            raise NotFound("no such user")
        return user

    async def provision(self, principal: Principal, data: UserProvision) -> User:
        _admin_only(principal, "pre-provision users")
        act_as(self.session, principal, self.clock)
        if await self.session.get(User, (principal.org_id, data.id)) is not None:
            raise Conflict("this user is already in the directory")
        now = self.clock.now()
        user = User(
            org_id=principal.org_id,
            id=data.id,
            email=data.email,
            name=data.name,
            role=data.role.value,
            team_ids=sorted(data.team_ids),
            provisioned_by=principal.sub,
            created_at=now,
            updated_at=now,
            version=1,
        )
        self.session.add(user)
        await self.session.flush()
        return user

    async def teams(self, principal: Principal, *, archived: bool) -> Sequence[Team]:
        query = select(Team).where(col(Team.org_id) == principal.org_id)
        archived_at = col(Team.archived_at)
        query = query.where(archived_at.is_not(None) if archived else archived_at.is_(None))
        return (await self.session.scalars(query.order_by(col(Team.name), col(Team.id)))).all()

    async def create_team(self, principal: Principal, data: TeamCreate) -> Team:
        _admin_only(principal, "create teams")
        act_as(self.session, principal, self.clock)
        team_id = data.id or str(new_id())
        if await self.session.get(Team, (principal.org_id, team_id)) is not None:
            raise Conflict("a team with this id exists")
        now = self.clock.now()
        team = Team(
            org_id=principal.org_id,
            id=team_id,
            name=data.name,
            created_at=now,
            updated_at=now,
            version=1,
        )
        self.session.add(team)
        await self.session.flush()
        return team

    async def _team(self, principal: Principal, team_id: str, what: str) -> Team:
        _admin_only(principal, what)
        act_as(self.session, principal, self.clock)
        team = await self.session.get(Team, (principal.org_id, team_id), with_for_update=True)
        if team is None:
            raise NotFound("no such team")
        return team

    async def rename_team(self, principal: Principal, team_id: str, name: str) -> Team:
        team = await self._team(principal, team_id, "rename teams")
        if team.name != name:
            team.name = name
            self._touch(team)
        return team

    async def archive_team(self, principal: Principal, team_id: str) -> Team:
        team = await self._team(principal, team_id, "archive teams")
        if team.archived_at is not None:
            raise Conflict("this team is already archived")
        team.archived_at = self.clock.now()
        self._touch(team)
        return team

    def _touch(self, row: Any) -> None:
        row.updated_at = self.clock.now()
        row.version += 1
