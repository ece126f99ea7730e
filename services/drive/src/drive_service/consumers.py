"""CRM's record events: a folder follows its record (renamed with it, moved to Deals when its
lead is converted, trashed with it and restored with it), and its sharing follows the record's
access list (owner, members, team), which the kit's access replica receives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from drive_service.repository import DriveRepository
from drive_service.runtime import DriveRuntime
from drive_service.service import folder_key
from pipedesk_common.access import AccessCause, AccessStored
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.crm import (
    CompanyCreated,
    CompanyDeleted,
    CompanyRestored,
    CompanyUpdated,
    ContactCreated,
    ContactDeleted,
    ContactRestored,
    ContactUpdated,
    DealCreated,
    DealDeleted,
    DealRestored,
    DealUpdated,
    LeadCreated,
    LeadDeleted,
    LeadRestored,
    LeadUpdated,
)

LEAD_EVENTS = (LeadCreated, LeadUpdated, LeadDeleted, LeadRestored)
DEAL_EVENTS = (DealCreated, DealUpdated, DealDeleted, DealRestored)
CONTACT_EVENTS = (ContactCreated, ContactUpdated, ContactDeleted, ContactRestored)
COMPANY_EVENTS = (CompanyCreated, CompanyUpdated, CompanyDeleted, CompanyRestored)


def follow_records(consumer: Consumer, runtime: Callable[[], DriveRuntime]) -> None:
    async def changed(
        session: AsyncSession, record_type: str, data: Any, name: str, lead_id: str | None = None
    ) -> None:
        repository = DriveRepository(session)
        stored = await repository.store_record(
            record_type,
            data.id,
            org_id=data.org_id,
            name=name,
            deleted=data.deleted_at is not None,
            version=data.version,
            lead_id=lead_id,
        )
        if not stored:
            return
        if lead_id is not None:
            await repository.adopt_lead_folder(data.org_id, data.id, lead_id)
        folder = await repository.made_folder_of(data.org_id, record_type, data.id)
        root = await repository.root(data.org_id)
        if folder is not None and root is not None:
            await runtime().work.request(session, folder_key(root, folder.id))

    @consumer.on(*LEAD_EVENTS)
    async def on_lead(session: AsyncSession, event: Event[Any]) -> None:
        await changed(session, "lead", event.data, event.data.title)

    @consumer.on(*DEAL_EVENTS)
    async def on_deal(session: AsyncSession, event: Event[Any]) -> None:
        await changed(session, "deal", event.data, event.data.title, event.data.lead_id)

    @consumer.on(*CONTACT_EVENTS)
    async def on_contact(session: AsyncSession, event: Event[Any]) -> None:
        await changed(session, "contact", event.data, event.data.name)

    @consumer.on(*COMPANY_EVENTS)
    async def on_company(session: AsyncSession, event: Event[Any]) -> None:
        await changed(session, "company", event.data, event.data.name)


def follow_access(runtime: Callable[[], DriveRuntime]) -> AccessStored:
    """A newer access list of a record: its folder's sharing is synced (once the consumer's
    transaction commits; the sync changes only what differs, so a redelivery changes nothing)
    and audited under the CRM change that caused it."""

    async def stored(
        session: AsyncSession,
        org_id: str,
        record_type: str,
        record_id: str,
        cause: AccessCause | None = None,
    ) -> None:
        repository = DriveRepository(session)
        folder = await repository.made_folder_of(org_id, record_type, record_id)
        root = await repository.root(org_id)
        if folder is not None and root is not None:
            if cause is not None and cause.audit_id is not None:
                folder.sharing_cause = {"audit_id": cause.audit_id, "actor_id": cause.actor_id}
            await runtime().work.request(session, folder_key(root, folder.id))

    return stored


async def follow_google_account(
    runtime: DriveRuntime, session: AsyncSession, org_id: str, user_id: str, email: str | None
) -> None:
    """A user connected a Google account (or disconnected it): the folders whose access names
    them are synced, so their derived shares move to that account (or back to the directory
    e-mail)."""
    repository = DriveRepository(session)
    changed = await repository.save_google_email(
        org_id, user_id, email.lower() if email else None, runtime.clock.now()
    )
    root = await repository.root(org_id)
    if not changed or root is None:
        return
    for folder in await repository.folders_naming(runtime.tables.access_replica, org_id, user_id):
        await runtime.work.request(session, folder_key(root, folder.id))
