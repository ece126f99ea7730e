"""The timeline's part of the user lifecycle (``pipedesk_common.lifecycle``).

Deactivation: nothing to end here (the user's token is refused by the contract's route itself).

Offboarding an org: every row of the org deleted from every table of the schema.

Deleting a user's Google data: every copy their mailbox, calendar or task lists held (the holders
whose ``owner_id`` is theirs, from a Google product) is deleted; an item no other copy holds
leaves every timeline with its links, an item other mailboxes or calendars hold stays without
their copy (its time, participants and records derived again from the copies left). Each
record whose timeline changed gets a new version, so no cached page of it is served again (the
cache's entries are keyed by that version and expire within ``PAGE_TTL_SECONDS``). Idempotent:
run again, it finds no copy of theirs.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from pipedesk_common.db import SessionDep
from pipedesk_common.erasure import erase_org_rows
from pipedesk_common.lifecycle import GoogleDataDeletion, OrgOffboarding, UserDeactivation
from timeline_service.models import ItemHolder, TimelineModel
from timeline_service.projection import Record, lock_org, refresh_item, touch

# The services whose copies come from a user's Google account.
GOOGLE_SOURCES = ("calendar", "drive", "gmail", "tasks")


class TimelineLifecycle:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def user_deactivated(
        self, deactivation: UserDeactivation, user_id: str
    ) -> dict[str, int]:
        return {}

    async def user_google_data_deleted(
        self, deletion: GoogleDataDeletion, user_id: str
    ) -> dict[str, int]:
        """In the request's transaction (committed when the route answers)."""
        session, org_id = self.session, deletion.org_id
        await lock_org(session, org_id)
        theirs = (
            col(ItemHolder.org_id) == org_id,
            col(ItemHolder.owner_id) == user_id,
            col(ItemHolder.source_service).in_(GOOGLE_SOURCES),
        )
        item_ids = sorted(
            set((await session.scalars(select(col(ItemHolder.item_id)).where(*theirs))).all())
        )
        if not item_ids:
            return {"copies": 0, "items": 0}
        copies = await session.execute(delete(ItemHolder).where(*theirs))
        records: set[Record] = set()
        left = set(
            (
                await session.scalars(
                    select(col(ItemHolder.item_id)).where(col(ItemHolder.item_id).in_(item_ids))
                )
            ).all()
        )
        for item_id in item_ids:
            records |= await refresh_item(session, org_id, item_id, None)
        await touch(session, org_id, records, [item for item in item_ids if item in left])
        return {
            "copies": int(getattr(copies, "rowcount", 0) or 0),
            "items": len(item_ids) - len(left),
        }

    async def org_offboarded(self, offboarding: OrgOffboarding, org_id: str) -> dict[str, int]:
        """Every row of the org (items, copies, links, versions, replicas, stream tickets, the
        consumer's version gates naming it), in the request's transaction."""
        await lock_org(self.session, org_id)
        return await erase_org_rows(self.session, TimelineModel.metadata, org_id)


async def timeline_lifecycle(session: SessionDep) -> TimelineLifecycle:
    return TimelineLifecycle(session)
