"""Drive's change log into the mirror and onto the records' timelines.

The org's Drive account is watched (``changes.watch``, the kit's push channels: verified by their
token, renewed before the expiration Google answered); a notification asks for a sync of
``changes``, which reads ``changes.list`` from the stored page token until Google answers a
``newStartPageToken``, and stores that. Push is not guaranteed, so a periodic job asks for the same
sync. The first sync of an org only takes Google's start token (the folder syncs hold what was
there before).

A change of a file inside a record's subfolder updates the mirror and, when Drive's ``version``
of the file is newer than the one last announced, publishes
``drive.file.created|updated|trashed|restored|shared`` (``deleted`` when it leaves the folders,
for good or to another place) with its timeline projection, so the record's timeline shows a
file someone added in Drive itself. A file deleted through PipeDesk announces itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from drive_service.google import FOLDER, DriveItem
from drive_service.models import TABLES, DriveFile, DriveRoot, RecordFolder
from drive_service.repository import DriveRepository
from drive_service.runtime import ANNOUNCED, DriveRuntime, apply_item, drive_user
from pipedesk_common.events import new_event
from pipedesk_common.events.drive import (
    DriveFileCreated,
    DriveFileDeleted,
    DriveFileRestored,
    DriveFileShared,
    DriveFileSnapshot,
    DriveFileTrashed,
    DriveFileUpdated,
)
from pipedesk_common.events.timeline import (
    REMOVED_STATUS,
    ItemKind,
    Link,
    RecordType,
    TimelineProjection,
    TimelineSource,
)
from pipedesk_common.google import GoogleUser
from pipedesk_common.google.push import Channel
from pipedesk_common.ids import new_id
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.outbox import add_event

CHANGES: Final = "changes"


def watched_resource(root: DriveRoot) -> str:
    """What the org's changes channel watches: My Drive's changes, or a shared drive's."""
    return f"{CHANGES}:{root.shared_drive_id}" if root.shared_drive_id else CHANGES


def changes_key(root: DriveRoot) -> SyncKey:
    return SyncKey("drive", root.org_id, root.user_id, CHANGES)


async def key_of_channel(session: AsyncSession, channel: Channel) -> SyncKey | None:
    """What a push notification asks to sync: the change log of the org it watches, if the
    channel's account still holds the org's folders."""
    root = await DriveRepository(session).root(channel.org_id)
    if root is None or root.user_id != channel.user_id:
        return None
    if channel.resource != watched_resource(root):
        return None
    return changes_key(root)


async def watch_changes(runtime: DriveRuntime, root: DriveRoot) -> None:
    """The org's changes channel, opened unless a lasting one is open, and the change log's
    start token, taken unless one is stored."""
    user = drive_user(root)
    await _stored_page_token(runtime, root, user)
    await runtime.push().ensure(user, watched_resource(root))


async def _stored_page_token(
    runtime: DriveRuntime, root: DriveRoot, user: GoogleUser
) -> str | None:
    """The change log's stored page token; None when there was none, and Google's start token
    is stored now (nothing before it is to be read)."""
    async with runtime.uow.read() as session:
        cursor = await DriveRepository(session).change_cursor(root.org_id)
    if cursor is not None:
        return cursor.page_token
    token = await runtime.google.start_page_token(user, root.shared_drive_id)
    async with runtime.uow.write() as session:
        await DriveRepository(session).save_change_cursor(root.org_id, token, runtime.clock.now())
    return None


async def read_changes(runtime: DriveRuntime, root: DriveRoot) -> int:
    """Read the change log from the stored token until Google's new start token; how many
    changes were read."""
    user = drive_user(root)
    stored = await _stored_page_token(runtime, root, user)
    if stored is None:
        return 0
    token = stored
    read = 0
    while True:
        page = await runtime.google.changes(user, token, root.shared_drive_id)
        async with runtime.uow.write() as session:
            places = await _places(session, root.org_id)
            for change in page.changes:
                await _apply_change(runtime, session, root, places, change.file_id, change.file)
            read += len(page.changes)
            token = page.next_page_token or page.new_start_page_token or token
            await DriveRepository(session).save_change_cursor(
                root.org_id, token, runtime.clock.now()
            )
        if page.next_page_token is None:
            return read


def new_file_values(
    folder: RecordFolder, subfolder: str, item: DriveItem, now: datetime
) -> dict[str, Any]:
    """The mirror row of a file found in a record's subfolder."""
    return {
        "id": new_id(),
        "org_id": folder.org_id,
        "folder_id": folder.id,
        "subfolder": subfolder,
        "google_id": item.id,
        "name": item.name,
        "mime_type": item.mime_type,
        "uploaded_by": item.app_properties.get("pipedesk_uploaded_by", "google"),
        "resource": {},
        "created_at": item.created_time or now,
        "updated_at": now,
    }


Places = dict[str, tuple[RecordFolder, str]]  # a subfolder's Google id → (its folder, its name)


async def _places(session: AsyncSession, org_id: str) -> Places:
    places: Places = {}
    for folder, _root in await DriveRepository(session).made_folders(org_id):
        for name, google_id in folder.subfolders.items():
            places[google_id] = (folder, name)
    return places


async def _apply_change(
    runtime: DriveRuntime,
    session: AsyncSession,
    root: DriveRoot,
    places: Places,
    file_id: str | None,
    item: DriveItem | None,
) -> None:
    if file_id is None:
        return
    repository = DriveRepository(session)
    row = await repository.file_by_google_id(file_id)
    place = None
    if item is not None and item.mime_type != FOLDER:
        place = next((places[p] for p in item.parents if p in places), None)
    if place is None:
        # Gone for good, moved out of every record's folder, or never in one.
        if row is not None and row.org_id == root.org_id and row.size is not None:
            folder = await repository.folder(row.folder_id)
            if folder is not None:
                await _announce(session, runtime, row, folder, DriveFileDeleted, item)
            await session.delete(row)
        return
    assert item is not None
    folder, subfolder = place
    now = runtime.clock.now()
    if row is None:
        row = await repository.found_file(new_file_values(folder, subfolder, item, now))
    elif row.size is None:
        return  # an upload through PipeDesk under way: its own answer fills and announces the row
    row.folder_id, row.subfolder = folder.id, subfolder
    apply_item(row, item)
    row.updated_at = now
    await announce_item(session, runtime, row, folder, item)


async def announce_item(
    session: AsyncSession,
    runtime: DriveRuntime,
    row: DriveFile,
    folder: RecordFolder,
    item: DriveItem,
) -> None:
    """Announce what Google's ``item`` says of a file now in ``row``, in the session's
    transaction, unless an event of the row already said it (its version): whichever of the
    change log and the upload's own answer comes first announces a file once."""
    announced: dict[str, Any] = dict(row.resource.get(ANNOUNCED) or {})
    version = item.version or 0
    if announced and version <= int(announced.get("version", 0)):
        return
    model = _event_of(item, announced)
    row.resource = {
        **row.resource,
        ANNOUNCED: {
            "version": version,
            "trashed": item.trashed,
            "permissions": sorted(item.permission_ids),
        },
    }
    await session.flush()
    await _announce(session, runtime, row, folder, model, item)


def _event_of(item: DriveItem, announced: dict[str, Any]) -> type[DriveFileSnapshot]:
    """Which file event a change is, against what the last one said."""
    if not announced:
        return DriveFileCreated
    if item.trashed != bool(announced.get("trashed")):
        return DriveFileTrashed if item.trashed else DriveFileRestored
    if sorted(item.permission_ids) != announced.get("permissions", []):
        return DriveFileShared
    return DriveFileUpdated


def saved_from(origin: dict[str, Any] | None) -> str | None:
    """What the timeline says a file was saved from: the email (its subject and sender) and,
    for an automation rule, that the rule saved it."""
    if not origin or not origin.get("message_id"):
        return None
    said = f"Saved from the email “{origin.get('subject') or '(no subject)'}”"
    if origin.get("sender"):
        said += f" from {origin['sender']}"
    if origin.get("rule_id"):
        said += f" by automation rule {origin['rule_id']}"
    return said


def _summary(row: DriveFile, modified_by: str | None) -> str:
    parts = [row.mime_type]
    source = saved_from(row.origin)
    if source:
        parts.insert(0, source)
    if row.size:
        parts.append(f"{row.size} bytes")
    if modified_by:
        parts.append(f"by {modified_by}")
    return " · ".join(parts)


async def _announce(
    session: AsyncSession,
    runtime: DriveRuntime,
    row: DriveFile,
    folder: RecordFolder,
    model: type[DriveFileSnapshot],
    item: DriveItem | None,
    *,
    removed: bool = False,
) -> None:
    """Publish a file event with its timeline projection, in the session's transaction
    (``removed``: the copy leaves PipeDesk though Drive still holds it, as retention's do)."""
    modifier = item.last_modifying_user if item is not None else None
    modified_by = modifier.email_address.lower() if modifier and modifier.email_address else None
    version = (item.version if item is not None and item.version else None) or int(
        (row.resource.get(ANNOUNCED) or {}).get("version", 0)
    ) + 1
    if model is DriveFileDeleted:
        version += 1  # the file's last version was announced; its leaving is newer still
    link = Link(type=RecordType(folder.record_type), id=folder.record_id)
    occurred = (item.modified_time if item is not None else None) or runtime.clock.now()
    status = {DriveFileDeleted: "deleted", DriveFileTrashed: "trashed"}.get(model)
    data = model(
        id=row.google_id,
        version=version,
        org_id=row.org_id,
        record=link,
        name=row.name,
        mime_type=row.mime_type,
        size=row.size,
        web_view_link=row.web_view_link,
        trashed=row.trashed,
        modified_by=modified_by,
        links=[link],
        timeline=TimelineProjection(
            kind=ItemKind.FILE,
            occurred_at=occurred,
            title="(removed)" if removed else row.name[:500] or "Untitled",
            summary=None if removed else _summary(row, modified_by),
            participants=[modified_by] if modified_by and not removed else [],
            links=[link],
            source=TimelineSource(
                service="drive",
                key=f"drive:file:{row.google_id}",
                google_id=row.google_id,
                url=row.web_view_link,
            ),
            status=REMOVED_STATUS if removed else status,
            version=version,
        ),
    )
    event = new_event(data, org_id=row.org_id, actor_id=None, time=runtime.clock.now())
    await add_event(session, TABLES.outbox, event)


async def announce_deleted(
    session: AsyncSession, runtime: DriveRuntime, row: DriveFile, folder: RecordFolder
) -> None:
    """A file deleted through PipeDesk leaves the timeline as deleted (Drive's change log will
    only say ``removed``, after the row is gone)."""
    await _announce(session, runtime, row, folder, DriveFileDeleted, None)


async def announce_removed(
    session: AsyncSession, runtime: DriveRuntime, row: DriveFile, folder: RecordFolder
) -> None:
    """A file leaves PipeDesk though Drive still holds it: announced deleted, its timeline copy
    ``removed`` (no title, summary or participants left in it)."""
    await _announce(session, runtime, row, folder, DriveFileDeleted, None, removed=True)
