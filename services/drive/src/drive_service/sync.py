"""Keeping each record folder in line with its CRM record, in Google: its name, its place
(``Leads`` or ``Deals``…), its ``appProperties``, whether it is in the trash, and who it is
shared with (``sharing``).

CRM's events (a record's changes, its access list) change what a folder should be
(``consumers``) and ask for a sync of that folder;
the sync reads the folder at Google and changes only what differs, so running it again, or
after a crash, is harmless. The periodic job syncs every folder, in case Google was changed by
hand or a sync failed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from drive_service.changes import (
    CHANGES,
    changes_key,
    new_file_values,
    read_changes,
    watch_changes,
)
from drive_service.google import FOLDER, quoted
from drive_service.models import DriveRoot, RecordFolder
from drive_service.repository import DriveRepository
from drive_service.runtime import DriveRuntime, apply_item, drive_user
from drive_service.service import ORG_KEY, folder_key, folder_name, record_key
from drive_service.sharing import sync_sharing
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.work import SyncRun
from pipedesk_common.periodic import PeriodicJob

FOLDER_PREFIX = "folder/"


def folder_sync(runtime: DriveRuntime) -> SyncRun:
    async def run(key: SyncKey) -> None:
        if key.resource == CHANGES:
            async with runtime.uow.read() as session:
                org_root = await DriveRepository(session).root(key.org_id)
            if org_root is not None and org_root.user_id == key.user_id:
                await read_changes(runtime, org_root)
            return
        if key.resource is None or not key.resource.startswith(FOLDER_PREFIX):
            return
        folder_id = UUID(key.resource.removeprefix(FOLDER_PREFIX))
        async with runtime.uow.read() as session:
            repository = DriveRepository(session)
            folder = await repository.folder(folder_id)
            if folder is None or folder.google_id is None:
                return
            root = await repository.root(folder.org_id)
            record = await repository.record(folder.record_type, folder.record_id)
        if root is None or record is None:
            return
        user = drive_user(root)
        current = await runtime.google.get(user, folder.google_id)
        changes: dict[str, Any] = {}
        wanted_name = folder_name(record)
        if current.name != wanted_name:
            changes["name"] = wanted_name
        properties = {ORG_KEY: root.org_id, record_key(record.record_type): record.record_id}
        if folder.lead_id:
            properties[record_key("lead")] = folder.lead_id
        if any(current.app_properties.get(k) != v for k, v in properties.items()):
            changes["appProperties"] = properties
        if current.trashed != record.deleted:
            changes["trashed"] = record.deleted
        parent = root.type_folders[record.record_type]
        add = parent if parent not in current.parents else None
        remove = ",".join(p for p in current.parents if p != parent) if add else None
        item = current
        if changes or add:
            item = await runtime.google.update(
                user, folder.google_id, changes, add_parents=add, remove_parents=remove
            )
        async with runtime.uow.write() as session:
            row = await DriveRepository(session).folder(folder_id, lock=True)
            if row is not None:
                row.name = item.name
                row.trashed = item.trashed
                row.web_view_link = item.web_view_link
                row.updated_at = runtime.clock.now()
        await sync_sharing(runtime, root, folder, audit=True)
        await _mirror_files(runtime, root, folder)

    return run


async def _mirror_files(runtime: DriveRuntime, root: DriveRoot, folder: RecordFolder) -> None:
    """The files Google holds in the folder's subfolders into the mirror: files added in Drive
    itself appear, changes are taken, and files gone from Drive leave the mirror."""
    if not folder.subfolders:
        return
    names = {google_id: name for name, google_id in folder.subfolders.items()}
    inside = " or ".join(f"{quoted(google_id)} in parents" for google_id in names)
    items = await runtime.google.find(
        drive_user(root), f"({inside}) and mimeType != {quoted(FOLDER)}", root.shared_drive_id
    )
    now = runtime.clock.now()
    async with runtime.uow.write() as session:
        rows = {row.google_id: row for row in await DriveRepository(session).files_in(folder.id)}
        for item in items:
            subfolder = next((names[p] for p in item.parents if p in names), None)
            if subfolder is None:
                continue
            row = rows.pop(item.id, None)
            if row is None:
                row = await DriveRepository(session).found_file(
                    new_file_values(folder, subfolder, item, now)
                )
            row.folder_id, row.subfolder = folder.id, subfolder
            apply_item(row, item)
            row.updated_at = now
        for gone in rows.values():
            if gone.size is not None:  # an upload under way is not in Google yet
                await session.delete(gone)


async def folder_keys(session: AsyncSession, org_id: str | None = None) -> list[SyncKey]:
    """The sync of every folder made in Google (of one org)."""
    made = await DriveRepository(session).made_folders(org_id)
    return [folder_key(root, folder.id) for folder, root in made]


async def resync_user(
    runtime: DriveRuntime, session: AsyncSession, org_id: str, user_id: str
) -> list[SyncKey]:
    """A reconnect of the org's Drive account: every folder it holds is synced again."""
    return [key for key in await folder_keys(session, org_id) if key.user_id == user_id]


async def change_keys(session: AsyncSession) -> list[SyncKey]:
    """The reading of every org's change log."""
    return [changes_key(root) for root in await DriveRepository(session).roots()]


async def watch_all(runtime: DriveRuntime) -> int:
    """Every org's changes channel open (after a root moved, a lapsed renewal…)."""
    async with runtime.uow.read() as session:
        roots = await DriveRepository(session).roots()
    for root in roots:
        await watch_changes(runtime, root)
    return len(roots)


def drive_jobs(runtime: DriveRuntime) -> list[PeriodicJob]:
    settings = runtime.settings
    interval = timedelta(seconds=settings.resync_interval_seconds)
    changes = timedelta(seconds=settings.changes_interval_seconds)
    return [
        PeriodicJob("drive.sync-folders", interval, lambda: runtime.work.sync_all(folder_keys)),
        # Push is not guaranteed: the change log is read now and then without a notification.
        PeriodicJob("drive.read-changes", changes, lambda: runtime.work.sync_all(change_keys)),
        PeriodicJob("drive.watch-changes", interval, lambda: watch_all(runtime)),
    ]
