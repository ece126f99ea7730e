"""Rules run on gmail's message events (queue ``automation.mail``).

Each ``gmail.message.created`` / ``updated`` of a mailbox's copy names the records the message
is on: those linked by hand travel in its timeline projection's ``links``; those its participants
matched are the timeline service's (``GET /internal/orgs/{org}/items/records``). A message
offered to matching that the timeline has not stored yet is retried with backoff until it has.

For each of the org's running rules whose target type the record is (a deal in one of its
stages when it lists some: the stage is CRM's now, ``GET /internal/records/deal/{id}``) and
whose sender domains hold the sender, gmail lists the message's attachments for the rule's
acting admin (``full`` level only), the rule's file type and size filters choose among them,
and a job is written with one ``automation.attachment.requested`` each, in the transaction of
the event's inbox row. A rule runs once per (rule, message, record): the job's unique key,
whichever mailbox's copy and however many events say so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from email.utils import parseaddr
from typing import Any, Final
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from automation_service.jobs import acting, add_attachments, new_job
from automation_service.models import AttachmentJob, Rule
from automation_service.schemas import RecordRef
from automation_service.settings import AutomationSettings
from pipedesk_common.app import ServiceContext
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.gmail import (
    GmailMessageCreated,
    GmailMessageSnapshot,
    GmailMessageUpdated,
)
from pipedesk_common.events.timeline import GONE_STATUSES, Link, RecordType, identity_of
from pipedesk_common.internal_calls import read_internal

log = logging.getLogger(__name__)

RULE_RECORDS: Final = frozenset({RecordType.LEAD, RecordType.DEAL})


class RecordsNotReady(RuntimeError):
    """The timeline has not stored the message yet; a retry finds the records it matched."""


def sender_domain(sender: str | None) -> str | None:
    address = parseaddr(sender or "")[1].strip().lower()
    return address.rpartition("@")[2] or None if "@" in address else None


def domain_allowed(domain: str | None, wanted: Sequence[str]) -> bool:
    """Any sender when the rule names no domain; else the domain or a subdomain of one."""
    if not wanted:
        return True
    return domain is not None and any(
        domain == allowed or domain.endswith("." + allowed) for allowed in wanted
    )


def type_allowed(filename: str, mime_type: str, wanted: Sequence[str]) -> bool:
    """Any file when the rule names no type; else by extension or MIME type (``image/*``)."""
    if not wanted:
        return True
    name, mime = filename.lower(), mime_type.lower().split(";")[0].strip()
    for kind in wanted:
        if "/" in kind:
            if mime == kind or (kind.endswith("/*") and mime.startswith(kind[:-1])):
                return True
        elif name.endswith("." + kind.lstrip(".")):
            return True
    return False


def chosen_by(rule: Rule, attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        item
        for item in attachments
        if type_allowed(str(item["filename"]), str(item["mime_type"]), rule.file_types)
        and (rule.min_size is None or int(item["size"]) >= rule.min_size)
        and (rule.max_size is None or int(item["size"]) <= rule.max_size)
    ]


class RuleRunner:
    """What a rule run reads of the other services."""

    def __init__(self, context: Callable[[], ServiceContext], settings: AutomationSettings):
        self._context = context
        self.settings = settings

    async def _read(
        self, service: str, path: str, what: str, params: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        context = self._context()
        found: dict[str, Any] | None = await read_internal(
            context.http,
            context.issuer(),
            service,
            f"{self.settings.url_of(service)}{path}",
            what=what,
            params=params,
        )
        return found

    async def records(self, data: GmailMessageSnapshot, identity: str) -> list[Link]:
        """The leads and deals the message is on: linked by hand, or matched by the timeline."""
        found = {link for link in data.timeline.links if link.type in RULE_RECORDS}
        if data.matched:
            answer = await self._read(
                "timeline",
                f"/internal/orgs/{data.org_id}/items/records",
                "the records mail is on",
                params={"identity": identity},
            )
            items = (answer or {}).get("items") or []
            if not items:
                raise RecordsNotReady(
                    f"the timeline has not stored message {data.id} yet; its matched records "
                    "are read again on retry"
                )
            for item in items:
                found.update(
                    link
                    for link in (Link.model_validate(record) for record in item["records"])
                    if link.type in RULE_RECORDS
                )
        return sorted(found, key=lambda link: (link.type.value, link.id))

    async def deal_stage(self, org_id: str, deal_id: str) -> str | None:
        """The deal's stage now; None for a deal of another org, deleted or gone."""
        found = await self._read("crm", f"/internal/records/deal/{deal_id}", "a deal's stage")
        if found is None or found.get("org_id") != org_id or found.get("deleted"):
            return None
        stage = found.get("stage")
        return str(stage) if stage else None

    async def attachments(self, org_id: str, user_id: str, message_id: str) -> dict[str, Any]:
        """The message's attachments for the rule's acting admin; empty when they may not see
        it in full (or are no longer an active member of the org)."""
        found = await self._read(
            "gmail",
            f"/internal/gmail/messages/{message_id}/attachments",
            "a message's attachments",
            params=acting(org_id, user_id),
        )
        return found or {"attachments": []}


async def _running_rules(session: AsyncSession, org_id: str) -> Sequence[Rule]:
    return (
        await session.scalars(
            select(Rule)
            .where(
                col(Rule.org_id) == org_id,
                col(Rule.enabled).is_(True),
                col(Rule.paused_reason).is_(None),
            )
            .order_by(col(Rule.created_at), col(Rule.id))
        )
    ).all()


async def _ran(session: AsyncSession, rule: Rule, identity: str, record: Link) -> bool:
    found = await session.scalar(
        select(col(AttachmentJob.id)).where(
            col(AttachmentJob.rule_id) == rule.id,
            col(AttachmentJob.source_identity) == identity,
            col(AttachmentJob.record_type) == record.type.value,
            col(AttachmentJob.record_id) == UUID(record.id),
        )
    )
    return found is not None


async def _targets(
    runner: RuleRunner,
    rule: Rule,
    records: list[Link],
    stages: dict[str, str | None],
    org_id: str,
) -> list[Link]:
    """The records a rule saves into: of its type, and a deal in one of its stages (if any)."""
    targets = []
    for record in records:
        if record.type.value != rule.record_type:
            continue
        if rule.stages is not None:
            if record.id not in stages:
                stages[record.id] = await runner.deal_stage(org_id, record.id)
            if stages[record.id] not in rule.stages:
                continue
        targets.append(record)
    return targets


async def run_rules(
    session: AsyncSession, runner: RuleRunner, event: Event[GmailMessageSnapshot]
) -> int:
    """Run the org's rules on one message event; how many jobs were made."""
    data = event.data
    if data.deleted or data.timeline.status in GONE_STATUSES:
        return 0
    domain = sender_domain(data.sender)
    rules = [
        rule
        for rule in await _running_rules(session, data.org_id)
        if domain_allowed(domain, rule.sender_domains)
    ]
    if not rules:
        return 0
    identity = data.timeline.identity or identity_of(data.message_id)
    records = await runner.records(data, identity)
    if not records:
        return 0
    stages: dict[str, str | None] = {}
    listed: dict[str, dict[str, Any]] = {}
    made = 0
    for rule in rules:
        for record in await _targets(runner, rule, records, stages, data.org_id):
            if await _ran(session, rule, identity, record):
                continue
            if rule.acting_user_id not in listed:
                listed[rule.acting_user_id] = await runner.attachments(
                    data.org_id, rule.acting_user_id, data.id
                )
            message = listed[rule.acting_user_id]
            attachments = chosen_by(rule, list(message.get("attachments") or []))
            attachments = attachments[: runner.settings.max_attachments_per_job]
            if not attachments:
                continue
            job = new_job(
                data.org_id,
                rule.acting_user_id,
                UUID(data.id),
                RecordRef.model_validate({"type": rule.record_type, "id": record.id}),
                {**message, "identity": identity},
                event.time,
                rule_id=rule.id,
            )
            session.add(job)
            await session.flush()
            await add_attachments(
                session, job, attachments, actor_id=f"svc:automation:rule:{rule.id}"
            )
            made += 1
            log.info(
                "rule %s saves %d attachment(s) of message %s into %s %s",
                rule.id,
                len(attachments),
                data.id,
                record.type.value,
                record.id,
            )
    return made


def subscribe_rules(
    consumer: Consumer, context: Callable[[], ServiceContext], settings: AutomationSettings
) -> None:
    runner = RuleRunner(context, settings)

    @consumer.on(GmailMessageCreated, GmailMessageUpdated)
    async def on_message(session: AsyncSession, event: Event[GmailMessageSnapshot]) -> None:
        await run_rules(session, runner, event)
