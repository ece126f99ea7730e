"""Repair: record folders brought back in line after people changed Drive by hand.

What is found, per record folder: the folder deleted in Drive (``recreate``), trashed while its
record lives or the other way round (``untrash``/``trash``), moved out of the hierarchy
(``move``), renamed (``rename``), a second folder for the same record (``merge``: its contents
moved into the record's folder, then it is trashed), and sharing that drifted from CRM access
(``share_added``, ``share_changed``, ``share_removed``). A dry run lists these; applying carries
them out and answers the same list, each action audited on its record; a dry run after that
finds nothing. A periodic dry run publishes the counts as ``pipedesk_drive_drift``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import Gauge

from drive_service.audit import record_action
from drive_service.google import FOLDER, DriveItem, has_property, quoted
from drive_service.models import DriveRoot, RecordFolder, RecordName
from drive_service.repository import DriveRepository
from drive_service.runtime import DriveRuntime, drive_user
from drive_service.service import (
    ORG_KEY,
    SUBFOLDER_KEY,
    DriveService,
    folder_key,
    folder_name,
    record_key,
)
from drive_service.sharing import sync_sharing
from drive_service.sync import folder_sync
from pipedesk_common.auth import Principal, Role
from pipedesk_common.errors import AppError, Forbidden, NotFound
from pipedesk_common.rbac import Action

DRIFT = Gauge(
    "pipedesk_drive_drift",
    "Record folders' drift from what they should be, by kind, as the last periodic dry run of "
    "the repair found it (every org)",
    ["kind"],
)
KINDS = (
    "recreate", "untrash", "trash", "move", "rename", "merge",
    "share_added", "share_changed", "share_removed",
)  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairAction:
    record_type: str
    record_id: str
    folder_google_id: str
    kind: str
    detail: str


async def _duplicates(
    runtime: DriveRuntime, root: DriveRoot, folder: RecordFolder
) -> list[DriveItem]:
    marker = has_property(record_key(folder.record_type), folder.record_id)
    query = (
        f"{marker} and {has_property(ORG_KEY, root.org_id)} and mimeType = {quoted(FOLDER)}"
        " and trashed = false"
    )
    found = await runtime.google.find(drive_user(root), query, root.shared_drive_id)
    return [item for item in found if item.id != folder.google_id]


async def folder_drift(
    runtime: DriveRuntime, root: DriveRoot, folder: RecordFolder, record: RecordName
) -> list[RepairAction]:
    """What differs between the folder in Drive and what it should be."""
    assert folder.google_id is not None
    user = drive_user(root)

    def action(kind: str, detail: str, google_id: str = folder.google_id or "") -> RepairAction:
        return RepairAction(folder.record_type, folder.record_id, google_id, kind, detail)

    try:
        current = await runtime.google.get(user, folder.google_id)
    except NotFound:
        return [action("recreate", "the folder is gone from Drive: make it again")]
    found: list[RepairAction] = []
    if current.trashed and not record.deleted:
        found.append(action("untrash", "the folder is in Drive's trash: restore it"))
    elif record.deleted and not current.trashed:
        found.append(action("trash", "the record is deleted: trash its folder"))
    parent = root.type_folders[folder.record_type]
    if parent not in current.parents:
        found.append(action("move", f"the folder left its place: move it back into {parent}"))
    wanted = folder_name(record)
    if current.name != wanted:
        found.append(action("rename", f"rename {current.name!r} to {wanted!r}"))
    for duplicate in await _duplicates(runtime, root, folder):
        found.append(
            action(
                "merge",
                f"a second folder {duplicate.name!r} for the record: move its contents in, "
                "then trash it",
                duplicate.id,
            )
        )
    if not current.trashed:
        for share in await sync_sharing(runtime, root, folder, apply=False):
            found.append(action(share.kind, share.describe()))
    return found


async def _recreate(service: DriveService, root: DriveRoot, folder: RecordFolder) -> None:
    """The folder is gone: one is made (or a surviving duplicate adopted) and the mirror's
    files of the old one forgotten."""
    runtime = service.runtime
    async with runtime.uow.read() as session:
        record = await DriveRepository(session).record(folder.record_type, folder.record_id)
    assert record is not None
    item, subfolders = await service._make_folder(root, record)
    async with runtime.uow.write() as session:
        repository = DriveRepository(session)
        row = await repository.folder(folder.id, lock=True)
        assert row is not None
        for gone in await repository.files_in(folder.id):
            await session.delete(gone)
        row.google_id, row.subfolders, row.name = item.id, subfolders, item.name
        row.web_view_link, row.trashed = item.web_view_link, item.trashed
        row.updated_at = runtime.clock.now()
        folder.google_id, folder.subfolders = item.id, subfolders


async def _merge(
    runtime: DriveRuntime, root: DriveRoot, folder: RecordFolder, duplicate_id: str
) -> None:
    """A duplicate's contents into the record's folder (subfolder by subfolder), then the
    duplicate to the trash."""
    user = drive_user(root)
    google = runtime.google
    assert folder.google_id is not None
    default = next(iter(folder.subfolders.values()), folder.google_id)
    children = await google.find(
        user, f"{quoted(duplicate_id)} in parents and trashed = false", root.shared_drive_id
    )
    for child in children:
        name = child.app_properties.get(SUBFOLDER_KEY)
        if child.mime_type == FOLDER and name is not None:
            target = folder.subfolders.get(name, default)
            inside = await google.find(
                user, f"{quoted(child.id)} in parents and trashed = false", root.shared_drive_id
            )
            for item in inside:
                await google.update(user, item.id, {}, add_parents=target, remove_parents=child.id)
            continue
        await google.update(user, child.id, {}, add_parents=default, remove_parents=duplicate_id)
    await google.update(user, duplicate_id, {"trashed": True})


async def repair(
    runtime: DriveRuntime,
    org_id: str,
    folders: list[RecordFolder],
    *,
    dry_run: bool,
    actor_id: str,
    service: DriveService | None = None,
) -> list[RepairAction]:
    """Find (and unless ``dry_run``, fix, through ``service``) the drift of ``folders`` of one
    org."""
    assert dry_run or service is not None
    async with runtime.uow.read() as session:
        root = await DriveRepository(session).root(org_id)
    if root is None:
        return []
    found: list[RepairAction] = []
    for folder in folders:
        async with runtime.uow.read() as session:
            record = await DriveRepository(session).record(folder.record_type, folder.record_id)
        if record is None or folder.google_id is None:
            continue
        actions = await folder_drift(runtime, root, folder, record)
        found.extend(actions)
        if dry_run or not actions:
            continue
        kinds = {action.kind for action in actions}
        if "recreate" in kinds:
            assert service is not None
            await _recreate(service, root, folder)
        for action in actions:
            if action.kind == "merge":
                await _merge(runtime, root, folder, action.folder_google_id)
        await folder_sync(runtime)(folder_key(root, folder.id))
        async with runtime.uow.write() as session:
            for action in actions:
                await record_action(
                    session,
                    runtime.clock,
                    org_id=org_id,
                    record=(action.record_type, action.record_id),
                    actor_id=actor_id,
                    action="folder_repaired",
                    file_id=action.folder_google_id,
                    file_name=folder.name,
                    changes={action.kind: (None, action.detail)},
                )
    return found


async def repair_for(
    service: DriveService,
    principal: Principal,
    record: tuple[str, str] | None,
    *,
    dry_run: bool,
) -> list[RepairAction]:
    """Repair one record's folder or the whole org's, for an admin (a record they cannot see
    is ``404`` first, as everywhere)."""
    if record is not None:
        await service.authorize(principal, *record, Action.READ)
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an admin repairs Drive folders")
    await service.root(principal.org_id)  # 409 when Drive is not set up
    async with service.uow.read() as session:
        repository = DriveRepository(session)
        if record is not None:
            one = await repository.made_folder_of(principal.org_id, *record)
            folders = [one] if one is not None else []
        else:
            folders = [folder for folder, _root in await repository.made_folders(principal.org_id)]
    return await repair(
        service.runtime,
        principal.org_id,
        folders,
        dry_run=dry_run,
        actor_id=principal.sub,
        service=service,
    )


async def measure_drift(runtime: DriveRuntime) -> int:
    """The periodic dry run: every org's drift counted into ``pipedesk_drive_drift``."""
    async with runtime.uow.read() as session:
        made = await DriveRepository(session).made_folders()
    by_org: dict[str, list[RecordFolder]] = {}
    for folder, root in made:
        by_org.setdefault(root.org_id, []).append(folder)
    counts = dict.fromkeys(KINDS, 0)
    for org_id, folders in sorted(by_org.items()):
        try:
            actions = await repair(runtime, org_id, folders, dry_run=True, actor_id="svc:drive")
        except AppError as problem:
            # One org whose Drive cannot be read now (its admin disconnected, Google refuses)
            # never stops the others' count.
            log.warning("drift of org %s not measured: %s", org_id, problem.slug)
            continue
        for action in actions:
            counts[action.kind] = counts.get(action.kind, 0) + 1
    for kind, count in counts.items():
        DRIFT.labels(kind).set(count)
    return sum(counts.values())
