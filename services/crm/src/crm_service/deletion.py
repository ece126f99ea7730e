"""Deletion on request: everything that came from one user's Google account, deleted from every
service, as a job the CRM coordinates through the lifecycle contract
(``pipedesk_common.lifecycle``, ``google-data-deleted``).

A job (``crm.data_deletions``) is written with an audit entry of the request (who asked, which
job; never what is deleted), then each service's part runs in the order of
``CRM_LIFECYCLE_SERVICES`` (the accounts service, which forgets the grant, last), each answer
recorded on its own with its counts by kind. A part that fails is run again by the next request,
which resumes the unfinished job; the parts already done are not called again, so the report is
the one an uninterrupted job gives. When every part is done the job is ``completed`` and a
second audit entry (``google_data_deleted``, ``caused_by`` the request's) records the counts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from uuid import UUID

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from crm_service.lifecycle import LifecycleContext, LifecycleParts, in_order
from crm_service.models import AuditEntry, CrmModel, GoogleDataDeletionJob, User, outbox
from crm_service.schemas import OrgOffboard
from crm_service.service import invalid
from pipedesk_common.auth import Principal, Role
from pipedesk_common.erasure import erase_org_rows
from pipedesk_common.errors import Forbidden, NotFound
from pipedesk_common.ids import new_id
from pipedesk_common.observability import request_id_var

REQUESTED = "google_data_delete_requested"
DELETED = "google_data_deleted"
OFFBOARDING = "offboarding_requested"
# The CRM's own part of an offboarding, after every other service's.
CRM_PART = "crm"


def report_of(job: GoogleDataDeletionJob) -> dict[str, dict[str, int]]:
    """What each service deleted, by kind, in the order the parts run."""
    return {name: dict(job.parts[name].get("ended") or {}) for name in in_order(job.parts)}


class GoogleDataDeletions:
    """Deleting a user's Google data (see the module docstring)."""

    def __init__(self, context: LifecycleContext) -> None:
        self.sessionmaker = context.sessionmaker
        self.clock = context.clock
        self.parts = LifecycleParts(context)

    async def delete_user_data(
        self, principal: Principal, user_id: str
    ) -> tuple[GoogleDataDeletionJob, bool]:
        """The deletion job of the user's Google data, run as far as the services allow; whether
        this request created it (a repeat resumes the unfinished job)."""
        _admin_only(principal, "delete a user's Google data")
        job, created = await self._start(principal, user_id)
        return await self._run(
            job,
            f"/users/{quote(user_id, safe='')}/google-data-deleted",
            {"org_id": job.org_id, "actor_id": job.requested_by, "job_id": str(job.id)},
        ), created

    async def resume(self, job_id: UUID) -> GoogleDataDeletionJob:
        """An unfinished job run on from where it stopped, with no request (the resumer's)."""
        job = await self.parts.current(GoogleDataDeletionJob, job_id)
        if job.scope == "org":
            return await self._run(
                job,
                f"/orgs/{quote(job.org_id, safe='')}/offboarded",
                {"actor_id": job.requested_by, "job_id": str(job.id)},
            )
        assert job.user_id is not None
        return await self._run(
            job,
            f"/users/{quote(job.user_id, safe='')}/google-data-deleted",
            {"org_id": job.org_id, "actor_id": job.requested_by, "job_id": str(job.id)},
        )

    async def _run(
        self, job: GoogleDataDeletionJob, path: str, body: dict[str, Any]
    ) -> GoogleDataDeletionJob:
        """The job's parts run by this process if it takes the job's lease; else (another
        runner holds it) the job as it stands."""
        async with self.parts.lease(GoogleDataDeletionJob, job.id) as token:
            if token is not None and await self.parts.run(
                GoogleDataDeletionJob, job.id, token, path, body
            ):
                return await self._finish(job.id)
        return await self.parts.current(GoogleDataDeletionJob, job.id)

    async def offboard_org(
        self, principal: Principal, data: OrgOffboard
    ) -> tuple[GoogleDataDeletionJob, bool]:
        """The offboarding job of the caller's org, run as far as the services allow; whether
        this request created it (a repeat resumes the unfinished job). Every other service's
        part runs first, then the CRM's own: every row of the org in schema ``crm`` but the
        job itself (which keeps the counts, never the content)."""
        _admin_only(principal, "offboard the organization")
        if data.confirm_org_id != principal.org_id:
            raise invalid("body.confirm_org_id", "type your organization's id to confirm")
        job, created = await self._start_org(principal)
        return await self._run(
            job,
            f"/orgs/{quote(job.org_id, safe='')}/offboarded",
            {"actor_id": job.requested_by, "job_id": str(job.id)},
        ), created

    async def _start_org(self, principal: Principal) -> tuple[GoogleDataDeletionJob, bool]:
        async with self.sessionmaker.begin() as session:
            running = await session.scalar(
                select(GoogleDataDeletionJob)
                .where(
                    col(GoogleDataDeletionJob.org_id) == principal.org_id,
                    col(GoogleDataDeletionJob.scope) == "org",
                    col(GoogleDataDeletionJob.status) == "running",
                )
                .with_for_update()
                .limit(1)
            )
            if running is not None:
                return running, False
            now = self.clock.now()
            job_id, audit_id = new_id(), new_id()
            await self._audit(
                session,
                (principal.org_id, principal.sub, principal.org_id),
                audit_id,
                OFFBOARDING,
                {"job_id": str(job_id)},
            )
            parts = self.parts.pending()
            parts[CRM_PART] = {"state": "pending", "ended": {}, "order": len(parts)}
            job = GoogleDataDeletionJob(
                id=job_id,
                org_id=principal.org_id,
                scope="org",
                requested_by=principal.sub,
                audit_id=audit_id,
                status="running",
                parts=parts,
                created_at=now,
                updated_at=now,
            )
            session.add(job)
            await session.flush()
            return job, True

    async def _erase_org(self, job_id: UUID) -> None:
        """The CRM's part of an offboarding, once every other part is done: every row of the
        org in schema ``crm`` (the audit log too: the trigger lets this transaction, which
        names the org, delete that org's entries only) but the jobs, in one transaction."""
        async with self.sessionmaker() as session:
            connection = await session.connection()
            job = (
                await connection.execute(
                    select(GoogleDataDeletionJob.__table__)  # type: ignore[attr-defined]
                    .where(GoogleDataDeletionJob.__table__.c.id == job_id)  # type: ignore[attr-defined]
                    .with_for_update()
                )
            ).one()
            parts = dict(job.parts)
            if (
                job.scope != "org"
                or parts[CRM_PART]["state"] == "done"
                or any(part["state"] != "done" for name, part in parts.items() if name != CRM_PART)
            ):
                return
            await connection.execute(
                text("SELECT set_config('crm.offboarding_org', :org, true)"), {"org": job.org_id}
            )
            deleted = await erase_org_rows(
                connection,
                CrmModel.metadata,
                job.org_id,
                outbox=outbox,
                keep=(GoogleDataDeletionJob.__tablename__,),
            )
            now = self.clock.now()
            parts[CRM_PART] = {
                **parts[CRM_PART],
                "state": "done",
                "ended": deleted,
                "error": None,
                "done_at": now.isoformat(),
            }
            await connection.execute(
                update(GoogleDataDeletionJob.__table__)  # type: ignore[attr-defined]
                .where(GoogleDataDeletionJob.__table__.c.id == job_id)  # type: ignore[attr-defined]
                .values(parts=parts, updated_at=now)
            )
            await session.commit()

    async def _start(
        self, principal: Principal, user_id: str
    ) -> tuple[GoogleDataDeletionJob, bool]:
        async with self.sessionmaker.begin() as session:
            user = await session.get(User, (principal.org_id, user_id), with_for_update=True)
            if user is None:
                raise NotFound("no such user")
            running = await session.scalar(
                select(GoogleDataDeletionJob)
                .where(
                    col(GoogleDataDeletionJob.org_id) == principal.org_id,
                    col(GoogleDataDeletionJob.scope) == "user",
                    col(GoogleDataDeletionJob.user_id) == user_id,
                    col(GoogleDataDeletionJob.status) == "running",
                )
                .limit(1)
            )
            if running is not None:
                return running, False
            now = self.clock.now()
            job_id, audit_id = new_id(), new_id()
            await self._audit(
                session,
                (principal.org_id, principal.sub, user_id),
                audit_id,
                REQUESTED,
                {"job_id": str(job_id)},
            )
            job = GoogleDataDeletionJob(
                id=job_id,
                org_id=principal.org_id,
                scope="user",
                user_id=user_id,
                requested_by=principal.sub,
                audit_id=audit_id,
                status="running",
                parts=self.parts.pending(),
                created_at=now,
                updated_at=now,
            )
            session.add(job)
            await session.flush()
            return job, True

    async def _audit(
        self,
        session: AsyncSession,
        subject: tuple[str, str, str],
        audit_id: UUID,
        action: str,
        changes: dict[str, Any],
        cause: UUID | None = None,
    ) -> None:
        """An entry of the audit log (``subject``: org, actor, whose data), recording the
        deletion, never what was deleted."""
        org_id, actor_id, record_id = subject
        await session.execute(
            insert(AuditEntry.__table__).values(  # type: ignore[attr-defined]
                id=audit_id,
                org_id=org_id,
                record_type="user" if record_id != org_id else "org",
                record_id=record_id,
                action=action,
                actor_id=actor_id,
                changes=changes,
                occurred_at=self.clock.now(),
                source="crm",
                caused_by=cause,
                request_id=request_id_var.get(),
            )
        )

    async def _finish(self, job_id: UUID) -> GoogleDataDeletionJob:
        await self._erase_org(job_id)
        async with self.sessionmaker.begin() as session:
            job = await session.get(GoogleDataDeletionJob, job_id, with_for_update=True)
            assert job is not None
            if job.status != "completed" and all(
                part["state"] == "done" for part in job.parts.values()
            ):
                job.status = "completed"
                job.completed_at = job.updated_at = self.clock.now()
                if job.scope == "org":
                    return job  # its audit log went with it; the job keeps the counts
                await self._audit(
                    session,
                    (job.org_id, job.requested_by, job.user_id or job.org_id),
                    new_id(),
                    DELETED,
                    {"job_id": str(job.id), "deleted": report_of(job)},
                    cause=job.audit_id,
                )
            return job

    async def job(self, principal: Principal, user_id: str, job_id: UUID) -> GoogleDataDeletionJob:
        _admin_only(principal, "read deletion jobs")
        async with self.sessionmaker() as session:
            job = await session.get(GoogleDataDeletionJob, job_id)
        if (
            job is None
            or job.org_id != principal.org_id
            or job.scope != "user"
            or job.user_id != user_id
        ):
            raise NotFound("no such deletion")
        return job


def _admin_only(principal: Principal, what: str) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden(f"only an admin may {what}")
