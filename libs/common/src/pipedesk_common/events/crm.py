"""Events the CRM service publishes (routing keys ``crm.*``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import AwareDatetime, Field

from pipedesk_common.events.envelope import EventData, VersionedData, contract
from pipedesk_common.events.timeline import Link, TimelineProjection


class LeadSnapshot(VersionedData):
    """A lead as it is after the change (``id`` and ``version`` identify it)."""

    org_id: str
    title: str
    company_name: str | None
    owner_id: str
    team_id: str | None
    status: str
    priority: str
    source: str | None
    estimated_value: Decimal | None
    currency: str | None
    tags: list[str]
    next_step: str | None
    sla_due_at: datetime | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    deleted_at: AwareDatetime | None


@contract("crm", "lead", "created")
class LeadCreated(LeadSnapshot):
    """A lead was created."""


@contract("crm", "lead", "updated")
class LeadUpdated(LeadSnapshot):
    """Fields of a lead changed."""

    changed: list[str] = Field(description="The fields this change touched")


@contract("crm", "lead", "deleted")
class LeadDeleted(LeadSnapshot):
    """A lead was moved to the trash."""


@contract("crm", "lead", "restored")
class LeadRestored(LeadSnapshot):
    """A lead was restored from the trash."""


class AccessChanged(VersionedData):
    """A record's access list after a change; replicas keep the newest version."""

    version_stream: ClassVar[str] = "access"

    org_id: str
    owner_id: str | None
    team_id: str | None
    members: dict[str, str] = Field(default_factory=dict)
    deleted: bool = False


@contract("crm", "lead", "access_changed")
class LeadAccessChanged(AccessChanged):
    """Who may see or change a lead changed: owner, team, members or deletion."""


@contract("crm", "audit", "recorded")
class AuditRecorded(EventData):
    """One audited change of a CRM record: who changed which fields, from what to what."""

    id: str
    record: Link
    action: str = Field(description="created, updated, deleted, restored, …")
    actor_id: str | None
    changes: dict[str, tuple[Any, Any]] = Field(
        default_factory=dict, description="field → [old, new]"
    )
    occurred_at: AwareDatetime
    timeline: TimelineProjection
