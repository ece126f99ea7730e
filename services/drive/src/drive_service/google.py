"""The Google Drive calls this service makes, and what Google answers as typed models.

Every call names ``supportsAllDrives`` (an org's root may be a shared drive). Creates carry an id
from ``files.generateIds``: Google answers ``409`` to a second create with that id, so a create
retried after an ambiguous failure never makes a second file.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

from googleapiclient.http import MediaIoBaseUpload

from pipedesk_common.errors import NotFound
from pipedesk_common.google import GoogleApi, GoogleCallError, GoogleUser
from pipedesk_common.google.media import StreamedMedia
from pipedesk_common.google.push import OpenedChannel, WatchCall
from pipedesk_common.google.resources import GoogleResource

FOLDER: Final = "application/vnd.google-apps.folder"
GOOGLE_APPS: Final = "application/vnd.google-apps."
FILE_FIELDS: Final = (
    "id,name,mimeType,parents,size,md5Checksum,trashed,createdTime,modifiedTime,webViewLink,"
    "appProperties,driveId,version,permissionIds,lastModifyingUser(emailAddress,displayName)"
)


class DriveUser(GoogleResource):
    email_address: str | None = None
    display_name: str | None = None


class DriveItem(GoogleResource):
    id: str
    name: str = ""
    mime_type: str = ""
    parents: list[str] = []
    size: int | None = None
    md5_checksum: str | None = None
    trashed: bool = False
    created_time: datetime | None = None
    modified_time: datetime | None = None
    web_view_link: str | None = None
    app_properties: dict[str, str] = {}
    version: int | None = None
    permission_ids: list[str] = []
    last_modifying_user: DriveUser | None = None

    @property
    def is_google_doc(self) -> bool:
        return self.mime_type.startswith(GOOGLE_APPS) and self.mime_type != FOLDER


class GeneratedIds(GoogleResource):
    ids: list[str]


class DriveChange(GoogleResource):
    file_id: str | None = None
    removed: bool = False
    file: DriveItem | None = None


class ChangePage(GoogleResource):
    changes: list[DriveChange] = []
    next_page_token: str | None = None
    new_start_page_token: str | None = None


class StartPageToken(GoogleResource):
    start_page_token: str


class WatchAnswer(GoogleResource):
    resource_id: str
    expiration: str | int | None = None


PERMISSION_FIELDS: Final = "id,type,role,emailAddress,domain"


class DrivePermission(GoogleResource):
    id: str
    type: str
    role: str
    email_address: str | None = None
    domain: str | None = None

    @property
    def grantee(self) -> tuple[str, str]:
        """(type, who): the email of a user or group, the domain, or ``anyone``."""
        who = self.email_address or self.domain or "anyone"
        return self.type, who.lower()


def quoted(value: str) -> str:
    """A string literal of Drive's query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def has_property(key: str, value: str) -> str:
    return f"appProperties has {{ key={quoted(key)} and value={quoted(value)} }}"


class DriveGoogle:
    def __init__(self, api: GoogleApi) -> None:
        self.api = api

    async def generate_ids(self, user: GoogleUser, count: int) -> list[str]:
        answer = await self.api.parsed(
            user,
            "files.generateIds",
            lambda client: client.files().generateIds(count=count, space="drive"),
            GeneratedIds,
        )
        return answer.ids

    async def get(self, user: GoogleUser, file_id: str) -> DriveItem:
        return await self.api.parsed(
            user,
            "files.get",
            lambda client: client.files().get(
                fileId=file_id, fields=FILE_FIELDS, supportsAllDrives=True
            ),
            DriveItem,
        )

    async def find(self, user: GoogleUser, query: str, shared_drive: str | None) -> list[DriveItem]:
        """Every file matching ``query`` (trashed ones too, unless the query says otherwise)."""
        where: dict[str, Any] = {"includeItemsFromAllDrives": True, "supportsAllDrives": True}
        if shared_drive is not None:
            where.update(corpora="drive", driveId=shared_drive)
        return await self.api.list_all(
            user,
            "files.list",
            lambda client, token: client.files().list(
                q=query,
                pageSize=100,
                pageToken=token,
                fields=f"nextPageToken,files({FILE_FIELDS})",
                **where,
            ),
            DriveItem,
            items="files",
        )

    async def create(self, user: GoogleUser, body: dict[str, Any]) -> DriveItem:
        """A file or folder without content, with the id in ``body`` (made once)."""
        return await self._once(
            user,
            body["id"],
            lambda: self.api.parsed(
                user,
                "files.create",
                lambda client: client.files().create(
                    body=body, fields=FILE_FIELDS, supportsAllDrives=True
                ),
                DriveItem,
                reconcile=lambda: self._stored(user, body["id"]),
            ),
        )

    async def _stored(self, user: GoogleUser, file_id: str) -> DriveItem | None:
        """The file an ambiguous create may have made (it named its id), or None."""
        try:
            return await self.get(user, file_id)
        except NotFound:
            return None

    async def upload_small(
        self, user: GoogleUser, body: dict[str, Any], data: bytes, mime_type: str
    ) -> DriveItem:
        """One multipart request (small files), with the id in ``body`` (made once)."""

        def request(client: Any) -> Any:
            media = MediaIoBaseUpload(io.BytesIO(data), mimetype=mime_type, resumable=False)
            return client.files().create(
                body=body, media_body=media, fields=FILE_FIELDS, supportsAllDrives=True
            )

        return await self._once(
            user,
            body["id"],
            lambda: self.api.parsed(
                user,
                "files.create",
                request,
                DriveItem,
                reconcile=lambda: self._stored(user, body["id"]),
            ),
        )

    async def upload_resumable(
        self, user: GoogleUser, body: dict[str, Any], media: StreamedMedia
    ) -> DriveItem:
        """A resumable upload, a chunk at a time, resumed from Google's offset after a failure."""

        async def upload() -> DriveItem:
            answer = await self.api.upload(
                user,
                "files.create",
                lambda client: client.files().create(
                    body=body, media_body=media, fields=FILE_FIELDS, supportsAllDrives=True
                ),
            )
            return DriveItem.model_validate(answer)

        return await self._once(user, body["id"], upload)

    async def _once(self, user: GoogleUser, file_id: str, create: Any) -> DriveItem:
        try:
            made: DriveItem = await create()
        except GoogleCallError as error:
            if error.google_status != 409:
                raise
            return await self.get(user, file_id)  # made by an attempt whose answer was lost
        return made

    async def update(
        self,
        user: GoogleUser,
        file_id: str,
        body: dict[str, Any],
        *,
        add_parents: str | None = None,
        remove_parents: str | None = None,
    ) -> DriveItem:
        parameters: dict[str, Any] = {"fileId": file_id, "body": body}
        if add_parents:
            parameters["addParents"] = add_parents
        if remove_parents:
            parameters["removeParents"] = remove_parents
        return await self.api.parsed(
            user,
            "files.update",
            lambda client: client.files().update(
                fields=FILE_FIELDS, supportsAllDrives=True, **parameters
            ),
            DriveItem,
        )

    async def delete(self, user: GoogleUser, file_id: str) -> None:
        await self.api.ensure_gone(
            user,
            "files.delete",
            lambda client: client.files().delete(fileId=file_id, supportsAllDrives=True),
        )

    def download(
        self, user: GoogleUser, file_id: str, first: int, last: int, chunk_bytes: int
    ) -> AsyncIterator[bytes]:
        return self.api.download(
            user,
            "files.get.media",
            lambda client: client.files().get_media(fileId=file_id, supportsAllDrives=True),
            first,
            last,
            chunk_bytes,
        )

    async def export(self, user: GoogleUser, file_id: str, mime_type: str) -> bytes:
        data: bytes = await self.api.call(
            user,
            "files.export",
            lambda client: client.files().export(fileId=file_id, mimeType=mime_type),
        )
        return data

    async def permissions(self, user: GoogleUser, file_id: str) -> list[DrivePermission]:
        return await self.api.list_all(
            user,
            "permissions.list",
            lambda client, token: client.permissions().list(
                fileId=file_id,
                pageSize=100,
                pageToken=token,
                fields=f"nextPageToken,permissions({PERMISSION_FIELDS})",
                supportsAllDrives=True,
            ),
            DrivePermission,
            items="permissions",
        )

    async def share(
        self,
        user: GoogleUser,
        file_id: str,
        grantee: tuple[str, str],
        role: str,
        *,
        notify: bool,
    ) -> DrivePermission:
        """Grant ``role`` to a grantee (``("user", email)`` or ``("domain", name)``). A grantee
        holds one permission per file: after an ambiguous failure it is looked up, never made
        twice (nor mailed twice)."""
        kind, who = grantee
        body: dict[str, Any] = {"type": kind, "role": role}
        body["domain" if kind == "domain" else "emailAddress"] = who

        async def stored() -> DrivePermission | None:
            for found in await self.permissions(user, file_id):
                if found.grantee == grantee and found.role == role:
                    return found
            return None

        parameters: dict[str, Any] = {"fileId": file_id, "body": body}
        if kind in ("user", "group"):
            parameters["sendNotificationEmail"] = notify
        return await self.api.parsed(
            user,
            "permissions.create",
            lambda client: client.permissions().create(
                fields=PERMISSION_FIELDS, supportsAllDrives=True, **parameters
            ),
            DrivePermission,
            reconcile=stored,
        )

    async def change_role(
        self, user: GoogleUser, file_id: str, permission_id: str, role: str
    ) -> DrivePermission:
        return await self.api.parsed(
            user,
            "permissions.update",
            lambda client: client.permissions().update(
                fileId=file_id,
                permissionId=permission_id,
                body={"role": role},
                fields=PERMISSION_FIELDS,
                supportsAllDrives=True,
            ),
            DrivePermission,
        )

    async def unshare(self, user: GoogleUser, file_id: str, permission_id: str) -> None:
        await self.api.ensure_gone(
            user,
            "permissions.delete",
            lambda client: client.permissions().delete(
                fileId=file_id, permissionId=permission_id, supportsAllDrives=True
            ),
        )

    # --- the change log ----------------------------------------------------------------------

    @staticmethod
    def _corpus(shared_drive: str | None) -> dict[str, Any]:
        where: dict[str, Any] = {"supportsAllDrives": True}
        if shared_drive is not None:
            where.update(driveId=shared_drive, includeItemsFromAllDrives=True)
        return where

    async def start_page_token(self, user: GoogleUser, shared_drive: str | None) -> str:
        answer = await self.api.parsed(
            user,
            "changes.getStartPageToken",
            lambda client: client.changes().getStartPageToken(
                supportsAllDrives=True, **({"driveId": shared_drive} if shared_drive else {})
            ),
            StartPageToken,
        )
        return answer.start_page_token

    async def changes(
        self, user: GoogleUser, page_token: str, shared_drive: str | None
    ) -> ChangePage:
        return await self.api.parsed(
            user,
            "changes.list",
            lambda client: client.changes().list(
                pageToken=page_token,
                pageSize=100,
                includeRemoved=True,
                fields=f"nextPageToken,newStartPageToken,changes(fileId,removed,file({FILE_FIELDS}))",
                **self._corpus(shared_drive),
            ),
            ChangePage,
        )

    def watcher(self, address: str) -> WatchCall:
        """``changes.watch`` from the current start token; the watched resource is
        ``changes`` (My Drive) or ``changes:<shared drive id>``."""

        async def watch(
            user: GoogleUser, resource: str, channel_id: str, token: str, ttl_seconds: int
        ) -> OpenedChannel:
            shared_drive = resource.partition(":")[2] or None
            page_token = await self.start_page_token(user, shared_drive)
            expiration = int((self.api.clock.now().timestamp() + ttl_seconds) * 1000)
            body = {
                "id": channel_id,
                "type": "web_hook",
                "address": address,
                "token": token,
                "expiration": str(expiration),
            }
            answer = await self.api.parsed(
                user,
                "changes.watch",
                lambda client: client.changes().watch(
                    pageToken=page_token, body=body, **self._corpus(shared_drive)
                ),
                WatchAnswer,
            )
            return OpenedChannel(resource_id=answer.resource_id, expiration=answer.expiration)

        return watch

    async def stop(self, user: GoogleUser, channel_id: str, resource_id: str) -> None:
        """Stop a channel; one Google no longer knows (expired, stopped) counts as stopped."""
        await self.api.stop_channel(user, channel_id, resource_id)
