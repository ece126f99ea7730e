"""CRM's record events: a folder follows its record (renamed with it, moved to Deals when its
lead is converted, trashed with it and restored with it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from drive_service.models import DriveRoot, RecordFolder
from drive_service.service import DriveRuntime, folder_key, store_record
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
        stored = await store_record(
            session,
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
            await _adopt_lead_folder(session, data.org_id, data.id, lead_id)
        folder = await session.scalar(
            select(RecordFolder).where(
                col(RecordFolder.org_id) == data.org_id,
                col(RecordFolder.record_type) == record_type,
                col(RecordFolder.record_id) == data.id,
                col(RecordFolder.google_id).is_not(None),
            )
        )
        root = await session.get(DriveRoot, data.org_id)
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


async def _adopt_lead_folder(
    session: AsyncSession, org_id: str, deal_id: str, lead_id: str
) -> None:
    """A converted lead's folder becomes its deal's (unless the deal has one already)."""
    has_own = await session.scalar(
        select(col(RecordFolder.id)).where(
            col(RecordFolder.org_id) == org_id,
            col(RecordFolder.record_type) == "deal",
            col(RecordFolder.record_id) == deal_id,
        )
    )
    if has_own is not None:
        return
    await session.execute(
        update(RecordFolder)
        .where(
            col(RecordFolder.org_id) == org_id,
            col(RecordFolder.record_type) == "lead",
            col(RecordFolder.record_id) == lead_id,
        )
        .values(record_type="deal", record_id=deal_id, lead_id=lead_id)
    )
