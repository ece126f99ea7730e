"""Drive's part of a user's deactivation: their derived shares leave every record folder now.

The directory already answers the user as inactive, so a folder's wanted shares no longer hold
them: each folder whose access list names them (owner or member) has its sharing synced at once,
and what was removed is audited like any derived change. Run again, it finds nothing to remove.
"""

from __future__ import annotations

from drive_service.repository import DriveRepository
from drive_service.runtime import DriveRuntime
from drive_service.sharing import sync_sharing


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
