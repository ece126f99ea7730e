"""Users leaving: an admin deactivates a user, and the CRM coordinates the rest.

A deactivation is a job (``crm.user_deactivations``), each step committed on its own so that a
request repeated after a crash or a failed step finishes the job without doing anything twice:

1. the user is marked inactive (audited; ``crm.user.updated`` carries ``active: false``) and
   the job row is written, naming who receives their records and the deactivation's audit
   entry — from then on the CRM refuses their token, and every other service within
   ``AUTH_REFUSALS_REFRESH_SECONDS`` (``pipedesk_common.signin``);
2. each service's part of the lifecycle contract (``pipedesk_common.lifecycle``), in the order
   of ``CRM_LIFECYCLE_SERVICES``: the Google products stop the user's channels, watches, syncs
   and derived shares; the accounts service revokes their Google grant only once every other
   part is done (the others need that grant to stop their channels at Google). A part that
   fails is recorded and run again by the next request;
3. their leads and deals are handed over, a batch per transaction, each as an owner change
   (audited with ``caused_by`` = the deactivation's audit entry, ``owner_changed`` and
   ``access_changed`` events, which Drive sharing and the calendar and tasks links follow).
   Only records the user still owns are picked, so a repeat never hands one over twice.

Reactivation makes the user active again (sign-in restored); nothing handed over comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from crm_service.audit import (
    OwnerChangeContext,
    act_as,
    act_for,
    caused_by,
    explain_owner_change,
)
from crm_service.models import (
    AuditEntry,
    Deal,
    GoogleDataDeletionJob,
    Lead,
    RecordMember,
    User,
    UserDeactivationJob,
)
from crm_service.schemas import UserDeactivate
from crm_service.service import invalid
from crm_service.settings import CrmSettings
from pipedesk_common.app import ServiceContext
from pipedesk_common.auth import Principal, Role, ServiceTokenIssuer
from pipedesk_common.clock import Clock
from pipedesk_common.errors import Conflict, Forbidden, NotFound
from pipedesk_common.ids import new_id
from pipedesk_common.lifecycle import LIFECYCLE_PREFIX, LifecyclePartPublic
from pipedesk_common.messaging import raise_if_cancelling

log = logging.getLogger(__name__)

HAND_OVER_BATCH = 200
HAND_OVER_REASON = "the previous owner was deactivated"
# Runs after every other part: they need the user's Google grant to stop their channels.
LAST_PART = "accounts"


# The jobs whose parts the lifecycle's services run.
JobRow = TypeVar("JobRow", UserDeactivationJob, GoogleDataDeletionJob)


class LifecycleCallFailed(Exception):
    """A service's part did not answer ``200``."""


@dataclass(frozen=True)
class LifecycleContext:
    """What a lifecycle job is run with: the CRM's database, clock and settings, and the HTTP
    client and service tokens that call the other services' parts."""

    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock
    settings: CrmSettings
    http: httpx.AsyncClient
    issuer: ServiceTokenIssuer

    @classmethod
    def of(cls, service: ServiceContext) -> LifecycleContext:
        """The CRM process's own."""
        settings = service.settings
        assert isinstance(settings, CrmSettings)
        return cls(service.sessionmaker, service.clock, settings, service.http, service.issuer())


def _admin_only(principal: Principal, what: str) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden(f"only an admin may {what}")


class UserLifecycle:
    """Deactivation jobs and reactivation (see the module docstring)."""

    def __init__(self, context: LifecycleContext) -> None:
        self.context = context
        self.sessionmaker = context.sessionmaker
        self.clock = context.clock
        self.parts = LifecycleParts(context)

    # --- deactivation ---------------------------------------------------------------------------

    async def deactivate(
        self, principal: Principal, user_id: str, data: UserDeactivate
    ) -> tuple[UserDeactivationJob, bool]:
        """The user's deactivation job, run to its end as far as the services allow; whether
        this request created it (a repeat resumes the unfinished job or answers the last one)."""
        _admin_only(principal, "deactivate users")
        job, created = await self._start(principal, user_id, data)
        if job.status == "completed":
            return job, created
        return await self._run(job), created

    async def resume(self, job_id: UUID) -> UserDeactivationJob:
        """An unfinished job run on from where it stopped, with no request (the resumer's);
        what it hands over is attributed to the admin who asked for the deactivation."""
        return await self._run(await self.parts.current(UserDeactivationJob, job_id))

    async def _run(self, job: UserDeactivationJob) -> UserDeactivationJob:
        """The job's parts and hand-over run by this process if it takes the job's lease; else
        (another runner holds it) the job as it stands."""
        async with self.parts.lease(UserDeactivationJob, job.id) as token:
            if token is not None and await self.parts.run(
                UserDeactivationJob,
                job.id,
                token,
                f"/users/{quote(job.user_id, safe='')}/deactivated",
                {"org_id": job.org_id, "actor_id": job.requested_by, "job_id": str(job.id)},
            ):
                await self._hand_over(job.id)
                return await self._finish(job.id)
        return await self.parts.current(UserDeactivationJob, job.id)

    async def _start(
        self, principal: Principal, user_id: str, data: UserDeactivate
    ) -> tuple[UserDeactivationJob, bool]:
        async with self.sessionmaker.begin() as session:
            act_as(session, principal, self.clock)
            user = await session.get(User, (principal.org_id, user_id), with_for_update=True)
            if user is None:
                raise NotFound("no such user")
            latest = await self._latest(session, principal.org_id, user_id)
            if latest is not None and (latest.status == "running" or not user.active):
                if data.reassign_to is not None and data.reassign_to != latest.new_owner_id:
                    raise Conflict(
                        f"this user's deactivation hands their records to {latest.new_owner_id}"
                    )
                return latest, False
            if user_id == principal.sub:
                raise Forbidden("an admin may not deactivate themselves; another admin may")
            if not user.active:
                raise Conflict("this user is already inactive")
            new_owner = await self._new_owner(session, user, data.reassign_to)
            now = self.clock.now()
            user.active = False
            user.updated_at = now
            user.version += 1
            await session.flush()  # writes the user's audit entry
            audit_id = await session.scalar(
                select(col(AuditEntry.id))
                .where(
                    col(AuditEntry.org_id) == user.org_id,
                    col(AuditEntry.record_type) == "user",
                    col(AuditEntry.record_id) == user.id,
                    col(AuditEntry.action) == "deactivated",
                )
                .order_by(col(AuditEntry.id).desc())
                .limit(1)
            )
            assert audit_id is not None
            job = UserDeactivationJob(
                id=new_id(),
                org_id=user.org_id,
                user_id=user.id,
                requested_by=principal.sub,
                new_owner_id=new_owner,
                audit_id=audit_id,
                status="running",
                parts=self.parts.pending(),
                created_at=now,
                updated_at=now,
            )
            session.add(job)
            await session.flush()
            return job, True

    async def _latest(
        self, session: AsyncSession, org_id: str, user_id: str
    ) -> UserDeactivationJob | None:
        found: UserDeactivationJob | None = await session.scalar(
            select(UserDeactivationJob)
            .where(
                col(UserDeactivationJob.org_id) == org_id,
                col(UserDeactivationJob.user_id) == user_id,
            )
            .order_by(
                col(UserDeactivationJob.created_at).desc(), col(UserDeactivationJob.id).desc()
            )
            .limit(1)
        )
        return found

    async def _new_owner(self, session: AsyncSession, user: User, chosen: str | None) -> str:
        """Who receives the records: the chosen user, or the one active manager of their team."""
        field = "body.reassign_to"
        if chosen is not None:
            target = await session.get(User, (user.org_id, chosen))
            if target is None or not target.active:
                raise invalid(field, "no such active user in your organization")
            if target.id == user.id:
                raise invalid(field, "the records go to another user than the one deactivated")
            if target.role == Role.VIEWER.value:
                raise invalid(field, "a viewer cannot own records")
            return target.id
        managers = (
            await session.scalars(
                select(User).where(
                    col(User.org_id) == user.org_id,
                    col(User.active).is_(True),
                    col(User.role) == Role.MANAGER.value,
                    col(User.id) != user.id,
                    User.__table__.c.team_ids.overlap(user.team_ids),  # type: ignore[attr-defined]
                )
            )
        ).all()
        if len(managers) != 1:
            found = "no active manager" if not managers else "several managers"
            raise invalid(field, f"{found} share a team with this user; name who receives them")
        return managers[0].id

    def _services(self) -> list[str]:
        return self.parts.services()

    async def _hand_over(self, job_id: UUID) -> None:
        """Every lead and deal the user still owns goes to the job's new owner, each change
        attributed to the admin who asked for the deactivation."""
        while True:
            async with self.sessionmaker.begin() as session:
                job = await session.get(UserDeactivationJob, job_id, with_for_update=True)
                assert job is not None
                if job.records_done:
                    return
                act_for(session, job.org_id, job.requested_by, self.clock)
                caused_by(session, job.audit_id)
                records = [
                    *await self._owned(session, Lead, job.org_id, job.user_id),
                    *await self._owned(session, Deal, job.org_id, job.user_id),
                ]
                now = self.clock.now()
                job.updated_at = now
                if not records:
                    job.records_done = True
                    return
                for record in records:
                    await self._change_owner(session, record, job.new_owner_id, now)
                job.records_reassigned += len(records)

    async def _owned(
        self, session: AsyncSession, model: type[Lead] | type[Deal], org_id: str, user_id: str
    ) -> list[Lead | Deal]:
        """A batch of the records (trashed ones too) the user still owns, locked."""
        found = await session.scalars(
            select(model)
            .where(col(model.org_id) == org_id, col(model.owner_id) == user_id)
            .order_by(col(model.id))
            .limit(HAND_OVER_BATCH)
            .with_for_update()
        )
        return [record for record in found.all() if isinstance(record, Lead | Deal)]

    async def _change_owner(
        self, session: AsyncSession, record: Lead | Deal, new_owner: str, now: datetime
    ) -> None:
        record_type = "lead" if isinstance(record, Lead) else "deal"
        members: Sequence[RecordMember] = (
            await session.scalars(
                select(RecordMember).where(
                    col(RecordMember.record_type) == record_type,
                    col(RecordMember.record_id) == record.id,
                    col(RecordMember.user_id) == new_owner,
                )
            )
        ).all()
        for member in members:  # the new owner is no longer also a member
            await session.delete(member)
        explain_owner_change(session, str(record.id), OwnerChangeContext(HAND_OVER_REASON, None))
        record.owner_id = new_owner
        record.updated_at = now
        record.version += 1

    async def _finish(self, job_id: UUID) -> UserDeactivationJob:
        async with self.sessionmaker.begin() as session:
            job = await session.get(UserDeactivationJob, job_id, with_for_update=True)
            assert job is not None
            if job.status != "completed" and (
                job.records_done and all(part["state"] == "done" for part in job.parts.values())
            ):
                job.status = "completed"
                job.completed_at = job.updated_at = self.clock.now()
            return job

    async def job(self, principal: Principal, user_id: str, job_id: UUID) -> UserDeactivationJob:
        _admin_only(principal, "read deactivation jobs")
        async with self.sessionmaker() as session:
            job = await session.get(UserDeactivationJob, job_id)
        if job is None or job.org_id != principal.org_id or job.user_id != user_id:
            raise NotFound("no such deactivation")
        return job

    # --- reactivation ---------------------------------------------------------------------------

    async def reactivate(self, principal: Principal, user_id: str) -> User:
        """The user may sign in again; what was handed over stays with its new owners."""
        _admin_only(principal, "reactivate users")
        async with self.sessionmaker.begin() as session:
            act_as(session, principal, self.clock)
            user = await session.get(User, (principal.org_id, user_id), with_for_update=True)
            if user is None:
                raise NotFound("no such user")
            latest = await self._latest(session, principal.org_id, user_id)
            if latest is not None and latest.status == "running":
                raise Conflict(
                    "this user's deactivation has not finished; repeat it to finish it first"
                )
            if user.active:
                raise Conflict("this user is active")
            user.active = True
            user.updated_at = self.clock.now()
            user.version += 1
        for service in self._services():
            await self._announce_reactivation(service, principal.org_id, user_id)
        async with self.sessionmaker() as session:
            found = await session.get(User, (principal.org_id, user_id))
        assert found is not None
        return found

    async def _announce_reactivation(self, service: str, org_id: str, user_id: str) -> None:
        """Tell a service at once; one that does not answer learns it from its next read of the
        deactivated users."""
        context = self.context
        url = (
            f"{context.settings.url_of(service)}{LIFECYCLE_PREFIX}/users/"
            f"{quote(user_id, safe='')}/reactivated"
        )
        try:
            await context.http.post(
                url,
                json={"org_id": org_id},
                headers={"Authorization": f"Bearer {context.issuer.token_for(service)}"},
            )
        except httpx.HTTPError:
            return


class LifecycleParts:
    """Each service's part of a lifecycle job (a row with ``parts``, as
    ``UserDeactivationJob``), called in the order of ``CRM_LIFECYCLE_SERVICES``, the accounts
    service last and only once every other part is done; each answer recorded on its own."""

    def __init__(self, context: LifecycleContext) -> None:
        self.sessionmaker = context.sessionmaker
        self.clock = context.clock
        self.settings = context.settings
        self.http = context.http
        self.issuer = context.issuer

    def services(self) -> list[str]:
        """The lifecycle's services, the accounts service last."""
        services = list(dict.fromkeys(self.settings.lifecycle_services))
        return [name for name in services if name != LAST_PART] + (
            [LAST_PART] if LAST_PART in services else []
        )

    def pending(self) -> dict[str, Any]:
        """A new job's parts: each service's, not run yet."""
        return {
            name: {"state": "pending", "ended": {}, "order": order}
            for order, name in enumerate(self.services())
        }

    @asynccontextmanager
    async def lease(self, model: type[JobRow], job_id: UUID) -> AsyncIterator[str | None]:
        """The job's lease while the context is open: its holder's token, or ``None`` when a
        live runner holds it (or the job is done), so this one must not run its parts. Taken
        by one conditional update, so of two runners at once only one gets it; released at
        the end. A runner that dies keeps it until ``lease_expires_at``, then anyone may."""
        token = str(new_id())
        now = self.clock.now()
        table = model.__table__  # type: ignore[attr-defined]
        async with self.sessionmaker.begin() as session:
            taken = await session.scalar(
                update(table)
                .where(
                    table.c.id == job_id,
                    table.c.status == "running",
                    or_(table.c.lease_holder.is_(None), table.c.lease_expires_at <= now),
                )
                .values(lease_holder=token, lease_expires_at=now + self._lease_span())
                .returning(table.c.id)
            )
        if taken is None:
            yield None
            return
        keeping = asyncio.create_task(self._keep(model, job_id, token), name="lifecycle-lease")
        try:
            yield token
        finally:
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
            async with self.sessionmaker.begin() as session:
                await session.execute(
                    update(table)
                    .where(table.c.id == job_id, table.c.lease_holder == token)
                    .values(lease_holder=None, lease_expires_at=None)
                )

    async def renew(self, model: type[JobRow], job_id: UUID, token: str) -> bool:
        """Extend the lease ``token`` holds; False when it was lost (it expired and another
        runner took the job), and the caller stops."""
        table = model.__table__  # type: ignore[attr-defined]
        async with self.sessionmaker.begin() as session:
            renewed = await session.scalar(
                update(table)
                .where(table.c.id == job_id, table.c.lease_holder == token)
                .values(lease_expires_at=self.clock.now() + self._lease_span())
                .returning(table.c.id)
            )
        return renewed is not None

    async def current(self, model: type[JobRow], job_id: UUID) -> JobRow:
        """The job as it stands."""
        async with self.sessionmaker() as session:
            job = await session.get(model, job_id)
        assert job is not None
        return job

    async def _keep(self, model: type[JobRow], job_id: UUID, token: str) -> None:
        """Renew the lease a few times per span while a part's call is on its way."""
        while True:
            await asyncio.sleep(self.settings.lifecycle_lease_seconds / 3)
            try:
                if not await self.renew(model, job_id, token):
                    return
            except Exception:  # the database may be away; the next beat tries again
                raise_if_cancelling()
                log.warning("could not renew the lease of job %s", job_id, exc_info=True)

    def _lease_span(self) -> timedelta:
        return timedelta(seconds=self.settings.lifecycle_lease_seconds)

    async def run(
        self, model: type[JobRow], job_id: UUID, token: str, path: str, body: dict[str, Any]
    ) -> bool:
        """Call every part not done yet at ``LIFECYCLE_PREFIX + path`` with ``body``, holding
        the job's lease ``token`` (renewed before each part); False if the lease was lost."""
        async with self.sessionmaker() as session:
            job = await session.get(model, job_id)
            assert job is not None
            parts: dict[str, Any] = dict(job.parts)
        # A part of the job's that no service of the lifecycle runs (the CRM's own part of an
        # offboarding) is its coordinator's, after these.
        called = [name for name in in_order(parts) if name in self.services()]
        for service in called:
            if parts[service]["state"] == "done":
                continue
            if service == LAST_PART and any(
                parts[name]["state"] != "done" for name in called if name != LAST_PART
            ):
                continue  # its turn comes when every other part is done
            if not await self.renew(model, job_id, token):
                return False
            try:
                answer = await self._call(service, path, body)
            except LifecycleCallFailed as failed:
                recorded = await self._record(model, job_id, token, service, error=str(failed))
            else:
                recorded = await self._record(model, job_id, token, service, ended=answer.ended)
            if recorded is None:
                return False
            parts[service] = recorded
        return True

    async def _call(self, service: str, path: str, body: dict[str, Any]) -> LifecyclePartPublic:
        url = f"{self.settings.url_of(service)}{LIFECYCLE_PREFIX}{path}"
        try:
            response = await self.http.post(
                url,
                json=body,
                headers={"Authorization": f"Bearer {self.issuer.token_for(service)}"},
                timeout=self.settings.lifecycle_call_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise LifecycleCallFailed(
                f"the {service} service cannot be reached: {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            detail = ""
            if response.headers.get("content-type", "").endswith("json"):
                found = response.json()
                detail = f": {found.get('detail')}" if isinstance(found, dict) else ""
            raise LifecycleCallFailed(
                f"the {service} service answered {response.status_code}{detail}"[:500]
            )
        try:
            return LifecyclePartPublic.model_validate(response.json())
        except ValueError as exc:
            raise LifecycleCallFailed(f"the {service} service answered an unreadable part") from exc

    async def _record(
        self,
        model: type[JobRow],
        job_id: UUID,
        token: str,
        service: str,
        *,
        ended: dict[str, int] | None = None,
        error: str | None = None,
    ) -> dict[str, Any] | None:
        """The part's answer, recorded only while ``token`` still holds the job's lease (else
        ``None``: the job's runner now is another, whose answer counts)."""
        async with self.sessionmaker.begin() as session:
            job = await session.get(model, job_id, with_for_update=True)
            assert job is not None
            if job.lease_holder != token:
                return None
            part: dict[str, Any] = dict(job.parts.get(service, {"ended": {}}))
            now = self.clock.now()
            if error is None:
                total = dict(part.get("ended") or {})
                for kind, count in (ended or {}).items():
                    total[kind] = total.get(kind, 0) + count
                part.update(state="done", ended=total, error=None, done_at=now.isoformat())
            else:
                part.update(state="failed", error=error)
            job.parts = {**job.parts, service: part}
            job.updated_at = now
            return part


def in_order(parts: dict[str, Any]) -> list[str]:
    """A job's services in the order they run (the row keeps them in a JSON object)."""
    return sorted(parts, key=lambda name: parts[name].get("order", 0))


async def deactivated_users(session: AsyncSession) -> list[tuple[str, str]]:
    """Every inactive user of every org, as ``(org_id, id)``."""
    rows = await session.execute(
        select(col(User.org_id), col(User.id)).where(col(User.active).is_(False))
    )
    return [(str(org_id), str(user_id)) for org_id, user_id in rows.all()]
