"""Drive's part of the user lifecycle.

Deactivation: their derived shares leave every record folder now.

The directory already answers the user as inactive, so a folder's wanted shares no longer hold
them: each folder whose access list names them (owner or member) has its sharing synced at once,
and what was removed is audited like any derived change. Run again, it finds nothing to remove.

Deleting their Google data: the Google account they connected is forgotten, and every folder
naming them has its sharing synced at once, so no share is left on that account (one to their
directory e-mail, the org's grant of their records' access, stays while they may see the
record). The kit then deletes the rest of their rows; the org's Drive root is the org's and
stays (``KEEP_TABLES``).
"""

from __future__ import annotations

from drive_service.repository import DriveRepository
from drive_service.runtime import DriveRuntime
from drive_service.sharing import sync_sharing

# The org's Drive root names the admin Google calls act as: the org's, not theirs.
KEEP_TABLES = ("roots",)


async def user_google_data_deleted(
    drive: DriveRuntime, org_id: str, user_id: str
) -> dict[str, int]:
    async with drive.uow.write() as session:
        forgot = await DriveRepository(session).save_google_email(
            org_id, user_id, None, drive.clock.now()
        )
    moved = await user_deactivated(drive, org_id, user_id)
    return {"google_accounts": int(forgot), **moved}


async def user_deactivated(drive: DriveRuntime, org_id: str, user_id: str) -> dict[str, int]:
    async with drive.uow.read() as session:
        repository = DriveRepository(session)
        root = await repository.root(org_id)
        folders = (
            await repository.folders_naming(drive.tables.access_replica, org_id, user_id)
            if root is not None
            else []
        )
    if root is None:
        return {"shares": 0}
    removed = 0
    for folder in folders:
        actions = await sync_sharing(drive, root, folder, audit=True)
        removed += sum(1 for action in actions if action.after is None)
    return {"shares": removed}
