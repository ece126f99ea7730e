"""Drive's domain logic: access first, then Google, then the mirror, each step its own unit of
work (no transaction is held across a Google call)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from drive_service.audit import record_action
from drive_service.changes import announce_deleted, announce_item, watch_changes
from drive_service.google import FOLDER, DriveItem, has_property, quoted
from drive_service.models import DriveFile, DriveRoot, RecordFolder, RecordName
from drive_service.repository import DriveRepository
from drive_service.runtime import OWNED, DriveRuntime, apply_item, drive_user
from drive_service.sharing import sync_sharing
from pipedesk_common.app import ServiceContext
from pipedesk_common.auth import Principal, Role
from pipedesk_common.errors import Conflict, Forbidden, InvalidInput, NotFound
from pipedesk_common.google import GoogleUser
from pipedesk_common.google.media import StreamedMedia
from pipedesk_common.idempotency import IdempotencyKeyReused
from pipedesk_common.ids import new_id
from pipedesk_common.internal_calls import read_internal
from pipedesk_common.messaging import raise_if_cancelling
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.rbac import ROLE_ACTIONS, Action, can

log = logging.getLogger(__name__)

TYPE_FOLDERS: Final = {
    "lead": "Leads",
    "deal": "Deals",
    "contact": "Contacts",
    "company": "Companies",
}
ORG_KEY: Final = "pipedesk_org"
KIND_KEY: Final = "pipedesk_kind"
SUBFOLDER_KEY: Final = "pipedesk_subfolder"


def record_key(record_type: str) -> str:
    """The ``appProperties`` key naming a record of this type on its folder."""
    return f"pipedesk_{record_type}"


def folder_name(record: RecordName) -> str:
    """``<record name> · <short id>``: unique among its siblings, readable in Drive."""
    return f"{record.name.strip()[:200] or 'Untitled'} · {record.record_id[-8:]}"


class DriveNotConfigured(Conflict):
    slug, title = "drive-not-configured", "An admin must choose the org's Drive root first"


class FolderBusy(Conflict):
    slug, title = "folder-being-created", "The record's folder is being created; retry shortly"


class UploadUnderWay(Conflict):
    slug, title = "upload-under-way", "An upload with this key is under way; retry shortly"


@dataclass(frozen=True)
class Upload:
    """A file to store: its name, type and size, and where its bytes come from."""

    name: str
    mime_type: str
    size: int
    body: AsyncIterator[bytes]
    uploader: str  # a user id, or ``svc:<service>`` (``svc:automation:rule:<id>`` for a rule)
    origin: dict[str, Any] | None = None  # what an internal caller saved it from


def folder_key(root: DriveRoot, folder_id: UUID) -> SyncKey:
    """The sync that brings a record folder's name, place and trash state in line with CRM."""
    return SyncKey("drive", root.org_id, root.user_id, f"folder/{folder_id}")


class DriveService:
    def __init__(self, runtime: DriveRuntime, context: ServiceContext) -> None:
        self.runtime = runtime
        self.context = context
        self.settings = runtime.settings
        self.google = runtime.google
        self.uow = runtime.uow
        self.clock = runtime.clock

    # --- access ------------------------------------------------------------------------------

    async def authorize(
        self, principal: Principal, record_type: str, record_id: str, action: Action
    ) -> RecordName:
        """The record, if the caller may ``action`` it: ``404`` when they may not see it (or it
        is deleted), ``403`` when they may see it but not do this. No Google call is made."""
        async with self.uow.write() as session:
            if record_type in OWNED:
                access = await self.runtime.replica.access_list(session, record_type, record_id)
                if access is None or not can(principal, Action.READ, access):
                    raise NotFound(f"no such {record_type}")
                if not can(principal, action, access):
                    raise Forbidden(f"you may not {action.value} this {record_type}'s files")
            record = await self.record(session, record_type, record_id)
        if record is None or record.org_id != principal.org_id or record.deleted:
            raise NotFound(f"no such {record_type}")
        if action not in ROLE_ACTIONS[principal.role]:
            raise Forbidden(f"your role may not {action.value} files")
        return record

    async def live_record(self, org_id: str, record_type: str, record_id: str) -> RecordName:
        """A record of ``org_id`` that is not deleted (for service callers), else ``404``."""
        async with self.uow.write() as session:
            record = await self.record(session, record_type, record_id)
        if record is None or record.org_id != org_id or record.deleted:
            raise NotFound(f"no such {record_type}")
        return record

    async def record(
        self, session: AsyncSession, record_type: str, record_id: str
    ) -> RecordName | None:
        """The record's name and state: from CRM's events, or asked of CRM on first sight."""
        repository = DriveRepository(session)
        known = await repository.record(record_type, record_id)
        if known is not None:
            return known
        answer = await read_internal(
            self.context.http,
            self.context.issuer(),
            "crm",
            f"{self.settings.crm_base_url.rstrip('/')}/internal/records/{record_type}/{record_id}",
            what="the record's name",
        )
        if answer is None:
            return None
        await repository.store_record(
            record_type,
            record_id,
            org_id=answer["org_id"],
            name=answer["name"],
            deleted=answer["deleted"],
            version=answer["version"],
            lead_id=answer.get("lead_id"),
        )
        return await repository.record(record_type, record_id)

    # --- the org's root ----------------------------------------------------------------------

    async def root(self, org_id: str) -> DriveRoot:
        async with self.uow.read() as session:
            root = await DriveRepository(session).root(org_id)
        if root is None:
            raise DriveNotConfigured("an admin must set the org's Drive root (PUT /api/drive/root)")
        return root

    async def configure_root(
        self, principal: Principal, shared_drive_id: str | None, name: str
    ) -> DriveRoot:
        """Make the caller's Google account (an admin's) the holder of the org's record folders:
        a shared drive, or a folder in their My Drive; the type folders are made in it."""
        if principal.role is not Role.ADMIN:
            raise Forbidden("only an admin sets the org's Drive root")
        user = GoogleUser(principal.org_id, principal.sub, principal.email)
        org = principal.org_id
        if shared_drive_id is not None:
            root_id = shared_drive_id
        else:
            found = await self.google.find(
                user, f"{has_property(KIND_KEY, 'root')} and {has_property(ORG_KEY, org)}", None
            )
            root_item = (
                found[0]
                if found
                else await self._new_folder(user, name, "root", {ORG_KEY: org, KIND_KEY: "root"})
            )
            root_id = root_item.id
        type_folders: dict[str, str] = {}
        for record_type, title in TYPE_FOLDERS.items():
            query = (
                f"{quoted(root_id)} in parents and {has_property(KIND_KEY, record_type)}"
                " and trashed = false"
            )
            found = await self.google.find(user, query, shared_drive_id)
            item = (
                found[0]
                if found
                else await self._new_folder(
                    user, title, root_id, {ORG_KEY: org, KIND_KEY: record_type}
                )
            )
            type_folders[record_type] = item.id
        now = self.clock.now()
        values = {
            "org_id": org,
            "user_id": principal.sub,
            "user_email": principal.email,
            "root_google_id": root_id,
            "shared_drive_id": shared_drive_id,
            "type_folders": type_folders,
            "created_at": now,
            "updated_at": now,
        }
        async with self.uow.write() as session:
            await DriveRepository(session).save_root(values)
        root = await self.root(org)
        try:
            await watch_changes(self.runtime, root)
        except Exception:  # the root is set; drive.watch-changes opens the channel later
            raise_if_cancelling()
            log.warning("could not watch the Drive changes of org %s yet", org, exc_info=True)
        return root

    async def _new_folder(
        self, user: GoogleUser, name: str, parent: str, properties: dict[str, str]
    ) -> DriveItem:
        [file_id] = await self.google.generate_ids(user, 1)
        body = {
            "id": file_id,
            "name": name,
            "mimeType": FOLDER,
            "parents": [parent],
            "appProperties": properties,
        }
        return await self.google.create(user, body)

    # --- a record's folder -------------------------------------------------------------------

    async def folder(self, record: RecordName) -> tuple[RecordFolder, DriveRoot]:
        """The record's folder, made on first use: exactly one, however many ask at once and in
        however many processes (one claims the row; the others wait for it), and found again by
        its ``appProperties`` when our row was lost."""
        root = await self.root(record.org_id)
        deadline = time.monotonic() + self.settings.folder_wait_seconds
        while True:
            row, claimed = await self._claim(record)
            if row.google_id is not None:
                return row, root
            if claimed:
                break
            if time.monotonic() > deadline:
                raise FolderBusy(
                    "another request is creating this folder", headers={"Retry-After": "1"}
                )
            await asyncio.sleep(0.05)
        try:
            item, subfolders = await self._make_folder(root, record)
        except BaseException:
            async with self.uow.write() as session:
                await DriveRepository(session).release_folder(row.id)
            raise
        async with self.uow.write() as session:
            made = await DriveRepository(session).folder(row.id, lock=True)
            assert made is not None
            made.google_id = item.id
            made.subfolders = subfolders
            made.name = item.name
            made.web_view_link = item.web_view_link
            made.trashed = item.trashed
            made.creating_until = None
            made.updated_at = self.clock.now()
        await self._share_new_folder(root, made)
        return made, root

    async def _share_new_folder(self, root: DriveRoot, folder: RecordFolder) -> None:
        """A new folder is shared as CRM access says before anyone is answered; should Google
        fail now, the folder's sync shares it later."""
        try:
            await sync_sharing(self.runtime, root, folder)
        except Exception:
            raise_if_cancelling()
            log.warning("could not share folder %s yet", folder.id, exc_info=True)
            async with self.uow.write() as session:
                await self.runtime.work.request(session, folder_key(root, folder.id))

    async def _claim(self, record: RecordName) -> tuple[RecordFolder, bool]:
        """The record's folder row, and whether this request now holds its creation."""
        now = self.clock.now()
        lease = now + timedelta(seconds=self.settings.create_lease_seconds)
        key = (record.org_id, record.record_type, record.record_id)
        async with self.uow.write() as session:
            repository = DriveRepository(session)
            found = await repository.folder_of(*key)
            if found is None:
                claimed = await repository.claim_new_folder(
                    {
                        "id": new_id(),
                        "org_id": record.org_id,
                        "record_type": record.record_type,
                        "record_id": record.record_id,
                        "subfolders": {},
                        "creating_until": lease,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                found = await repository.folder_of(*key)
                assert found is not None
                return found, claimed
            if found.google_id is not None:
                return found, False
            return found, await repository.take_over_folder(found.id, now, lease)

    async def _make_folder(
        self, root: DriveRoot, record: RecordName
    ) -> tuple[DriveItem, dict[str, str]]:
        user = drive_user(root)
        marker = has_property(record_key(record.record_type), record.record_id)
        query = f"{marker} and {has_property(ORG_KEY, root.org_id)} and mimeType = {quoted(FOLDER)}"
        found = await self.google.find(user, query, root.shared_drive_id)
        names = self.settings.subfolders
        folder = found[0] if found else None
        if folder is None:
            ids = await self.google.generate_ids(user, 1)
            properties = {ORG_KEY: root.org_id, record_key(record.record_type): record.record_id}
            if record.lead_id:
                properties[record_key("lead")] = record.lead_id
            folder = await self.google.create(
                user,
                {
                    "id": ids[0],
                    "name": folder_name(record),
                    "mimeType": FOLDER,
                    "parents": [root.type_folders[record.record_type]],
                    "appProperties": properties,
                },
            )
        inside = f"{quoted(folder.id)} in parents and mimeType = {quoted(FOLDER)}"
        existing = {
            item.app_properties.get(SUBFOLDER_KEY): item.id
            for item in await self.google.find(user, inside, root.shared_drive_id)
        }
        missing = [name for name in names if name not in existing]
        fresh = iter(await self.google.generate_ids(user, len(missing)) if missing else [])
        subfolders: dict[str, str] = {}
        for name in names:
            if name in existing:
                subfolders[name] = str(existing[name])
                continue
            made = await self.google.create(
                user,
                {
                    "id": next(fresh),
                    "name": name,
                    "mimeType": FOLDER,
                    "parents": [folder.id],
                    "appProperties": {ORG_KEY: root.org_id, SUBFOLDER_KEY: name},
                },
            )
            subfolders[name] = made.id
        return folder, subfolders

    # --- files -------------------------------------------------------------------------------

    async def files(
        self,
        folder: RecordFolder,
        *,
        trashed: bool,
        after: tuple[Any, UUID] | None,
        limit: int,
    ) -> list[DriveFile]:
        """The folder's files from the mirror, oldest first (keyset paged)."""
        async with self.uow.read() as session:
            return await DriveRepository(session).files(
                folder.id, trashed=trashed, after=after, limit=limit
            )

    async def upload(
        self,
        record: RecordName,
        subfolder: str,
        upload: Upload,
        *,
        caller_key: str | None = None,
    ) -> tuple[DriveFile, bool]:
        """Store a file in a subfolder of the record's folder; (the file, whether it was made
        now). The row and the file's Google id are written first, so a retry with the same
        ``caller_key`` never makes a second file, even after a failure between Google and us."""
        if subfolder not in self.settings.subfolders:
            raise InvalidInput(
                f"subfolder: one of {', '.join(self.settings.subfolders)}",
            )
        folder, root = await self.folder(record)
        user = drive_user(root)
        done = await self._keyed(record.org_id, caller_key) if caller_key is not None else None
        if done is not None:
            if (done.folder_id, done.subfolder, done.name) != (folder.id, subfolder, upload.name):
                raise IdempotencyKeyReused("this key was sent before with another file")
            if done.size is not None:
                return done, False
            row_id, google_id = done.id, done.google_id
        else:
            row_id, google_id = await self._pending(record, folder, subfolder, upload, caller_key)
        body = {
            "id": google_id,
            "name": upload.name,
            "parents": [folder.subfolders[subfolder]],
            "appProperties": {ORG_KEY: record.org_id, "pipedesk_uploaded_by": upload.uploader},
        }
        try:
            item = await self._send(user, body, upload)
        except BaseException:
            if caller_key is None:
                # Nobody can retry this one: if Google did store it, the folder sync finds it.
                async with self.uow.write() as session:
                    await DriveRepository(session).delete_file(row_id)
            raise
        async with self.uow.write() as session:
            row = await DriveRepository(session).file(row_id, lock=True)
            assert row is not None
            apply_item(row, item)
            row.updated_at = self.clock.now()
            # The change log may have been read while the upload was under way, and skipped it.
            await announce_item(session, self.runtime, row, folder, item)
            await record_action(
                session,
                self.clock,
                org_id=record.org_id,
                record=(record.record_type, record.record_id),
                actor_id=upload.uploader,
                action="file_uploaded",
                file_id=row.google_id,
                file_name=row.name,
                changes={
                    "name": (None, row.name),
                    "subfolder": (None, subfolder),
                    "size": (None, row.size),
                    **({"origin": (None, row.origin)} if row.origin else {}),
                },
            )
            return row, True

    async def files_with_md5(self, record: RecordName, subfolder: str, md5: str) -> list[DriveFile]:
        """The record subfolder's stored files (not trashed) with this content hash."""
        async with self.uow.read() as session:
            repository = DriveRepository(session)
            folder = await repository.folder_of(record.org_id, record.record_type, record.record_id)
            if folder is None:
                return []
            return await repository.files_with_md5(folder.id, subfolder, md5)

    async def _keyed(self, org_id: str, caller_key: str) -> DriveFile | None:
        async with self.uow.read() as session:
            return await DriveRepository(session).keyed_file(org_id, caller_key)

    async def _pending(
        self,
        record: RecordName,
        folder: RecordFolder,
        subfolder: str,
        upload: Upload,
        caller_key: str | None,
    ) -> tuple[UUID, str]:
        """The upload's row, written before Google is asked, with the file's Google id."""
        root = await self.root(record.org_id)
        [google_id] = await self.google.generate_ids(drive_user(root), 1)
        row_id = new_id()
        now = self.clock.now()
        async with self.uow.write() as session:
            inserted = await DriveRepository(session).add_pending_file(
                {
                    "id": row_id,
                    "org_id": record.org_id,
                    "folder_id": folder.id,
                    "subfolder": subfolder,
                    "google_id": google_id,
                    "name": upload.name,
                    "mime_type": upload.mime_type,
                    "uploaded_by": upload.uploader,
                    "caller_key": caller_key,
                    "origin": upload.origin,
                    "resource": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
        if not inserted:  # a concurrent request with the same key
            raise UploadUnderWay(
                "an upload with this key is under way", headers={"Retry-After": "1"}
            )
        return row_id, google_id

    async def _send(self, user: GoogleUser, body: dict[str, Any], upload: Upload) -> DriveItem:
        if upload.size <= self.settings.resumable_threshold_bytes:
            data = bytearray()
            async for piece in upload.body:
                data += piece
            if len(data) != upload.size:
                raise InvalidInput(f"the body has {len(data)} bytes, not {upload.size}")
            return await self.google.upload_small(user, body, bytes(data), upload.mime_type)
        media = StreamedMedia(
            upload.body,
            size=upload.size,
            mimetype=upload.mime_type,
            chunksize=self.settings.upload_chunk_bytes,
            loop=asyncio.get_running_loop(),
        )
        return await self.google.upload_resumable(user, body, media)

    async def file(self, principal: Principal, file_id: UUID, action: Action) -> DriveFile:
        """A file the caller may ``action`` (through its record): ``404`` otherwise."""
        async with self.uow.read() as session:
            repository = DriveRepository(session)
            found = await repository.file(file_id)
            folder = await repository.folder(found.folder_id) if found else None
        if found is None or folder is None or found.org_id != principal.org_id:
            raise NotFound("no such file")
        if found.size is None:
            raise NotFound("no such file")
        await self.authorize(principal, folder.record_type, folder.record_id, action)
        return found

    async def drive_user_of(self, org_id: str) -> GoogleUser:
        return drive_user(await self.root(org_id))

    async def rename(self, principal: Principal, file_id: UUID, name: str) -> DriveFile:
        found = await self.file(principal, file_id, Action.UPDATE)
        user = await self.drive_user_of(found.org_id)
        item = await self.google.update(user, found.google_id, {"name": name})
        return await self._apply(
            found.id, item, principal, "file_renamed", {"name": (found.name, item.name)}
        )

    async def set_trashed(self, principal: Principal, file_id: UUID, trashed: bool) -> DriveFile:
        # Trashing a file changes the record's documents, not the record: editors may.
        found = await self.file(principal, file_id, Action.UPDATE)
        user = await self.drive_user_of(found.org_id)
        item = await self.google.update(user, found.google_id, {"trashed": trashed})
        action = "file_trashed" if trashed else "file_restored"
        return await self._apply(
            found.id, item, principal, action, {"trashed": (found.trashed, item.trashed)}
        )

    async def move(
        self,
        principal: Principal,
        file_id: UUID,
        record_type: str,
        record_id: str,
        subfolder: str,
    ) -> DriveFile:
        """Move a file into another record's folder: ``update`` needed on both records."""
        if subfolder not in self.settings.subfolders:
            raise InvalidInput(f"subfolder: one of {', '.join(self.settings.subfolders)}")
        found = await self.file(principal, file_id, Action.UPDATE)
        target = await self.authorize(principal, record_type, record_id, Action.UPDATE)
        folder, root = await self.folder(target)
        async with self.uow.read() as session:
            current = await DriveRepository(session).folder(found.folder_id)
        assert current is not None
        old_parent = current.subfolders.get(found.subfolder, "")
        new_parent = folder.subfolders[subfolder]
        item = await self.google.update(
            drive_user(root),
            found.google_id,
            {},
            add_parents=new_parent if new_parent != old_parent else None,
            remove_parents=old_parent if new_parent != old_parent else None,
        )
        async with self.uow.write() as session:
            row = await DriveRepository(session).file(found.id, lock=True)
            if row is None:
                raise NotFound("no such file")
            row.folder_id, row.subfolder = folder.id, subfolder
            apply_item(row, item)
            row.updated_at = self.clock.now()
            changes: dict[str, tuple[Any, Any]] = {
                "record": (
                    f"{current.record_type}:{current.record_id}",
                    f"{target.record_type}:{target.record_id}",
                ),
                "subfolder": (found.subfolder, subfolder),
            }
            records = {
                (current.record_type, current.record_id),
                (target.record_type, target.record_id),
            }
            for moved in sorted(records):
                await record_action(
                    session,
                    self.clock,
                    org_id=row.org_id,
                    record=moved,
                    actor_id=principal.sub,
                    action="file_moved",
                    file_id=row.google_id,
                    file_name=row.name,
                    changes=changes,
                )
            return row

    async def delete(self, principal: Principal, file_id: UUID) -> None:
        found = await self.file(principal, file_id, Action.READ)
        if principal.role is not Role.ADMIN:
            raise Forbidden("only an admin deletes a file for good")
        user = await self.drive_user_of(found.org_id)
        await self.google.delete(user, found.google_id)
        async with self.uow.write() as session:
            repository = DriveRepository(session)
            folder = await repository.folder(found.folder_id)
            if folder is not None:
                await announce_deleted(session, self.runtime, found, folder)
            await repository.delete_file(found.id)
            if folder is not None:
                await record_action(
                    session,
                    self.clock,
                    org_id=found.org_id,
                    record=(folder.record_type, folder.record_id),
                    actor_id=principal.sub,
                    action="file_deleted",
                    file_id=found.google_id,
                    file_name=found.name,
                    changes={"name": (found.name, None), "size": (found.size, None)},
                )

    async def _apply(
        self,
        row_id: UUID,
        item: DriveItem,
        principal: Principal,
        action: str,
        changes: dict[str, tuple[Any, Any]],
    ) -> DriveFile:
        """Google's answer into the mirror, and the action into the audit, in one transaction."""
        async with self.uow.write() as session:
            repository = DriveRepository(session)
            row = await repository.file(row_id, lock=True)
            if row is None:
                raise NotFound("no such file")
            folder = await repository.folder(row.folder_id)
            apply_item(row, item)
            row.updated_at = self.clock.now()
            if folder is not None:
                await record_action(
                    session,
                    self.clock,
                    org_id=row.org_id,
                    record=(folder.record_type, folder.record_id),
                    actor_id=principal.sub,
                    action=action,
                    file_id=row.google_id,
                    file_name=row.name,
                    changes=changes,
                )
            return row

    async def content(self, found: DriveFile, first: int, last: int) -> AsyncIterator[bytes]:
        user = await self.drive_user_of(found.org_id)
        pieces: AsyncIterator[bytes] = self.google.download(
            user, found.google_id, first, last, self.settings.download_chunk_bytes
        )
        return pieces

    async def export(self, found: DriveFile, mime_type: str) -> bytes:
        user = await self.drive_user_of(found.org_id)
        data: bytes = await self.google.export(user, found.google_id, mime_type)
        return data
