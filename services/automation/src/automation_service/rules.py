"""An org's automation rules: admins create, change and delete them; anyone of the org reads
them. A rule of another org is simply not found (``404``).

A rule reads mail for its acting admin, the one who last created or changed it: gmail decides
that admin's level on each message, so a rule never saves more of a mailbox than that admin may
read. When the acting admin is deactivated their rules are paused (``paused_reason``); an admin
who changes such a rule becomes its acting admin and it runs again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from automation_service.models import AttachmentJob, JobAttachment, Rule
from automation_service.schemas import RuleCreate, RuleUpdate
from pipedesk_common.auth import Principal, Role
from pipedesk_common.clock import Clock
from pipedesk_common.errors import Forbidden, NotFound, invalid
from pipedesk_common.ids import new_id

PAUSED_CREATOR_LEFT = "its acting admin was deactivated; an admin who changes the rule resumes it"


def _admin_only(principal: Principal, doing: str) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden(f"only admins {doing} automation rules")


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """The rule's fields, consistent: stages only for deals; the two sizes bound a range from
    either end (the smaller is its minimum), as no schema can relate two fields' values."""
    if values.get("stages") is not None and values["record_type"] != "deal":
        raise invalid("stages", "stages are for rules on deals only", "stages_for_deals")
    low, high = values.get("min_size"), values.get("max_size")
    if low is not None and high is not None and low > high:
        values["min_size"], values["max_size"] = high, low
    values["sender_domains"] = list(dict.fromkeys(values.get("sender_domains") or []))
    values["file_types"] = list(dict.fromkeys(values.get("file_types") or []))
    if values.get("stages") is not None:
        values["stages"] = list(dict.fromkeys(values["stages"]))
    return values


async def create_rule(
    session: AsyncSession, principal: Principal, data: RuleCreate, clock: Clock
) -> Rule:
    _admin_only(principal, "create")
    now = clock.now()
    rule = Rule(
        id=new_id(),
        org_id=principal.org_id,
        acting_user_id=principal.sub,
        created_by=principal.sub,
        created_at=now,
        updated_at=now,
        **_checked(data.model_dump()),
    )
    session.add(rule)
    await session.flush()
    return rule


async def rules_of(session: AsyncSession, principal: Principal) -> Sequence[Rule]:
    return (
        await session.scalars(
            select(Rule)
            .where(col(Rule.org_id) == principal.org_id)
            .order_by(col(Rule.created_at), col(Rule.id))
        )
    ).all()


async def rule_of(
    session: AsyncSession, principal: Principal, rule_id: UUID, *, lock: bool = False
) -> Rule:
    query = select(Rule).where(col(Rule.id) == rule_id, col(Rule.org_id) == principal.org_id)
    rule = await session.scalar(query.with_for_update() if lock else query)
    if rule is None:
        raise NotFound("no such rule")
    return rule


async def update_rule(
    session: AsyncSession, principal: Principal, rule_id: UUID, data: RuleUpdate, clock: Clock
) -> Rule:
    _admin_only(principal, "change")
    rule = await rule_of(session, principal, rule_id, lock=True)
    current = {
        "record_type": rule.record_type,
        "stages": rule.stages,
        "sender_domains": rule.sender_domains,
        "file_types": rule.file_types,
        "min_size": rule.min_size,
        "max_size": rule.max_size,
    }
    changed = data.model_dump(exclude_unset=True)
    for name in ("name", "record_type", "sender_domains", "file_types", "enabled"):
        if name in changed and changed[name] is None:
            raise invalid(name, "may not be null", "null")
    if changed.get("record_type") == "lead" and "stages" not in changed:
        changed["stages"] = None  # a rule moved to leads drops its deal stages
    values = _checked({**current, **changed})
    for name in current:
        setattr(rule, name, values[name])
    for name in ("name", "enabled"):
        if name in changed:
            setattr(rule, name, changed[name])
    rule.acting_user_id = principal.sub  # the admin who changes it answers for it now
    rule.paused_reason = None
    rule.updated_at = clock.now()
    rule.version += 1
    session.add(rule)
    await session.flush()
    return rule


async def delete_rule(session: AsyncSession, principal: Principal, rule_id: UUID) -> None:
    _admin_only(principal, "delete")
    rule = await rule_of(session, principal, rule_id, lock=True)
    await session.delete(rule)


async def rule_jobs(
    session: AsyncSession,
    principal: Principal,
    rule_id: UUID,
    *,
    after: tuple[Any, UUID] | None,
    limit: int,
) -> list[tuple[AttachmentJob, list[JobAttachment]]]:
    """The rule's jobs, newest first (admins)."""
    _admin_only(principal, "read the jobs of")
    await rule_of(session, principal, rule_id)
    query = select(AttachmentJob).where(
        col(AttachmentJob.org_id) == principal.org_id, col(AttachmentJob.rule_id) == rule_id
    )
    if after is not None:
        query = query.where(
            tuple_(col(AttachmentJob.created_at), col(AttachmentJob.id)) < tuple_(*after)
        )
    jobs = (
        await session.scalars(
            query.order_by(
                col(AttachmentJob.created_at).desc(), col(AttachmentJob.id).desc()
            ).limit(limit)
        )
    ).all()
    rows = (
        await session.scalars(
            select(JobAttachment)
            .where(col(JobAttachment.job_id).in_([job.id for job in jobs]))
            .order_by(col(JobAttachment.attachment_id))
        )
    ).all()
    by_job: dict[UUID, list[JobAttachment]] = {job.id: [] for job in jobs}
    for row in rows:
        by_job[row.job_id].append(row)
    return [(job, by_job[job.id]) for job in jobs]


async def pause_rules_acting_for(session: AsyncSession, org_id: str, user_id: str) -> int:
    """Pause the rules a deactivated admin acted for; how many."""
    result = await session.execute(
        update(Rule)
        .where(
            col(Rule.org_id) == org_id,
            col(Rule.acting_user_id) == user_id,
            col(Rule.paused_reason).is_(None),
        )
        .values(paused_reason=PAUSED_CREATOR_LEFT)
    )
    return int(getattr(result, "rowcount", 0) or 0)
