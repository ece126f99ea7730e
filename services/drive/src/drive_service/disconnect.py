"""The org's rule for its file index once the account holding its Drive root disconnects.

The record folders and their files live in the org's root: a shared drive (the org's, whoever
connected it) or a folder of one admin's My Drive. Only the second is mirrored from a user's
account, so when the admin holding a My Drive root disconnects Google Drive (or Google revokes
their access) the org's ``on_disconnect`` rule (``pipedesk_common.mirror.disconnect``) applies:
``keep_metadata`` keeps the file index as last seen; ``remove`` removes every file of the
org's record folders from PipeDesk, each announced ``drive.file.deleted`` with its timeline
status ``removed``, as a file gone from Drive leaves every timeline. The record folders stay
(their explicit shares with them): a new root's holder reads their files again.
Anyone else's disconnect moves only their derived shares (``consumers.follow_google_account``).
"""

from __future__ import annotations

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from drive_service.changes import announce_removed
from drive_service.models import DriveFile, DriveRoot, RecordFolder
from drive_service.repository import DriveRepository
from drive_service.runtime import DriveRuntime
from drive_service.service import DriveService
from pipedesk_common.auth import Principal, Role
from pipedesk_common.errors import Forbidden
from pipedesk_common.mirror.disconnect import OnDisconnect, rule_on_disconnect

ROOTS_TABLE: Table = DriveRoot.__table__  # type: ignore[attr-defined]


async def set_disconnect_rule(
    service: DriveService, principal: Principal, rule: OnDisconnect
) -> DriveRoot:
    """The org's rule replaced (admins; the root chosen first)."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an admin sets what the file index becomes on a disconnect")
    root = await service.root(principal.org_id)
    async with service.uow.write() as session:
        row = await DriveRepository(session).root(root.org_id)
        assert row is not None
        row.on_disconnect = rule
        row.updated_at = service.clock.now()
    return await service.root(principal.org_id)


async def remove_root_files(
    runtime: DriveRuntime, session: AsyncSession, org_id: str, user_id: str
) -> int:
    """Every file of the org's record folders removed when ``user_id`` holds the org's My Drive
    root (each announced, timeline status ``removed``); how many."""
    root = await session.get(DriveRoot, org_id)
    if root is None or root.user_id != user_id or root.shared_drive_id is not None:
        return 0
    rows = (
        await session.execute(
            select(DriveFile, RecordFolder)
            .join(RecordFolder, col(RecordFolder.id) == col(DriveFile.folder_id))
            .where(col(DriveFile.org_id) == org_id)
            .order_by(col(DriveFile.id))
            .with_for_update(of=DriveFile)
        )
    ).all()
    for file, folder in rows:
        if file.size is not None:  # an upload never finished was never announced
            await announce_removed(session, runtime, file, folder)
    await session.execute(
        delete(DriveFile).where(col(DriveFile.id).in_([file.id for file, _ in rows]))
    )
    return len(rows)


access_ended = rule_on_disconnect(ROOTS_TABLE, remove_root_files)
