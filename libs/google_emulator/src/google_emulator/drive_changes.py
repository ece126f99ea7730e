"""Google Drive API v3: permissions, the change log and push channels.

- ``permissions``: grants of ``reader``, ``commenter``, ``writer`` (and ``organizer``,
  ``fileOrganizer`` on shared drive items) to a ``user``, ``group``, ``domain`` or ``anyone``,
  inherited by what is inside a folder; only a writer (or better) shares. Whether Google would
  have e-mailed the grantee (``sendNotificationEmail``, true unless said otherwise) is recorded.
- ``changes``: every change of a file is logged for everyone who could see it then; a page token
  is a position in that log. A file someone can no longer see (deleted, or access lost) is a
  ``removed`` entry.
- ``changes.watch`` and ``files.watch`` open push channels: a change is posted as Drive posts it
  (``change`` for the change log; ``add``, ``update`` with ``X-Goog-Changed``, ``trash``,
  ``untrash``, ``remove`` for a file), until ``channels.stop`` or the channel's expiration.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from google_emulator.core import Emulator, GoogleError, emulator_of, rfc3339
from google_emulator.drive import (
    CHANGE_LISTENERS,
    ROLE_RANK,
    DriveChange,
    DriveError,
    DriveFile,
    DriveState,
    Permission,
    _begin,
    _descendants,
    _file,
    _json_body,
    _offset,
    _visible,
    audience,
    drive_state,
    file_json,
    partial,
    record_change,
    require_role,
)
from google_emulator.push import Deliveries, PushChannel, open_channel, stop_channel

router = APIRouter()
admin_router = APIRouter(prefix="/_emulator/drive")

TYPES = ("user", "group", "domain", "anyone")
SHARED_DRIVE_ROLES = ("organizer", "fileOrganizer")
DEFAULT_PERMISSION_FIELDS = "kind,id,type,role"
DEFAULT_CHANGE_FIELDS = (
    "kind,nextPageToken,newStartPageToken,"
    "changes(kind,changeType,time,removed,fileId,file(kind,id,name,mimeType))"
)
# Drive's channel lifetimes: an hour unless asked, at most a day for a file, a week for changes.
DEFAULT_CHANNEL_TTL = timedelta(hours=1)
MAX_FILE_CHANNEL_TTL = timedelta(days=1)
MAX_CHANGES_CHANNEL_TTL = timedelta(days=7)


def deliveries_of(state: DriveState) -> Deliveries:
    deliveries: Deliveries = state.deliveries
    return deliveries


def _bad(message: str, location: str) -> DriveError:
    return DriveError(400, "invalid", message, location)


# --- permissions ------------------------------------------------------------------------------


def permission_id(kind: str, value: str) -> str:
    """Google's permission ids are stable per grantee; the emulator's are derived from it."""
    if kind == "anyone":
        return "anyoneWithLink"
    digest = hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()
    return str(int(digest[:15], 16))


def permission_json(permission: Permission, file: DriveFile) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "drive#permission",
        "id": permission.id,
        "type": permission.type,
        "role": permission.role,
    }
    if permission.email is not None:
        body["emailAddress"] = permission.email
        body["displayName"] = permission.email
    if permission.domain is not None:
        body["domain"] = permission.domain
    if permission.type in ("domain", "anyone"):
        body["allowFileDiscovery"] = permission.allow_discovery
    if file.drive_id is not None:
        body["permissionDetails"] = [
            {
                "permissionType": "file",
                "role": permission.role,
                "inherited": False,
            }
        ]
    return body


def _owner_permission(file: DriveFile) -> Permission | None:
    if file.drive_id is not None or not file.owner:
        return None
    return Permission(permission_id("user", file.owner), "user", "owner", email=file.owner)


def _all_permissions(file: DriveFile) -> list[Permission]:
    owner = _owner_permission(file)
    return ([owner] if owner else []) + list(file.permissions)


def _parse_permission(body: dict[str, Any], file: DriveFile) -> Permission:
    kind, role = body.get("type"), body.get("role")
    if kind not in TYPES:
        raise _bad("Invalid permission type.", "permission.type")
    if role not in ROLE_RANK:
        raise _bad("Invalid permission role.", "permission.role")
    if role in SHARED_DRIVE_ROLES and file.drive_id is None:
        raise DriveError(
            403,
            "invalidSharingRequest",
            f"The {role} role is only for items in a shared drive.",
            "permission.role",
        )
    email = body.get("emailAddress")
    domain = body.get("domain")
    if kind in ("user", "group"):
        if not isinstance(email, str) or "@" not in email:
            raise _bad(
                "A user or group permission needs an emailAddress.", "permission.emailAddress"
            )
        email = email.strip().lower()
        return Permission(permission_id(kind, email), kind, role, email=email)
    if kind == "domain":
        if not isinstance(domain, str) or not domain or "@" in domain:
            raise _bad("A domain permission needs a domain.", "permission.domain")
        domain = domain.strip().lower()
        allow = bool(body.get("allowFileDiscovery", False))
        return Permission(
            permission_id(kind, domain), kind, role, domain=domain, allow_discovery=allow
        )
    allow = bool(body.get("allowFileDiscovery", False))
    return Permission(permission_id(kind, ""), kind, role, allow_discovery=allow)


def _permission_changed(
    state: DriveState,
    emulator: Emulator,
    file: DriveFile,
    before: dict[str, tuple[frozenset[str], frozenset[str]]],
    email: str,
) -> None:
    """A grant changed who sees ``file`` and all inside it: each is a change for them."""
    file.last_modifier = email
    for item in [file, *_descendants(state, file.id)]:
        record_change(state, emulator, item, "update", ["permissions"], before=before.get(item.id))


def _audiences(
    state: DriveState, file: DriveFile
) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    return {item.id: audience(state, item) for item in [file, *_descendants(state, file.id)]}


@router.post("/drive/v3/files/{file_id}/permissions")
async def permissions_create(
    request: Request,
    file_id: str,
    fields: str | None = None,
    send_notification_email: bool = Query(True, alias="sendNotificationEmail"),
    email_message: str | None = Query(None, alias="emailMessage"),
    transfer_ownership: bool = Query(False, alias="transferOwnership"),
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> dict[str, Any]:
    """drive.permissions.create: share a file or folder (a grantee already holding one has its
    role changed)"""
    method = "drive.permissions.create"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    file = _file(state, emulator, email, file_id, supports_all_drives)
    require_role(state, email, file, "writer")
    permission = _parse_permission(await _json_body(request), file)
    if permission.role == "owner":
        if file.drive_id is not None:
            raise DriveError(
                403,
                "teamDrivesOwnershipTransferNotSupported",
                "Ownership of shared drive items cannot be transferred.",
                "transferOwnership",
            )
        if not transfer_ownership or permission.type != "user":
            raise DriveError(
                403,
                "forbidden",
                "The transferOwnership parameter must be enabled when the permission role is "
                "'owner'.",
                "transferOwnership",
            )
        require_role(state, email, file, "owner")
    if not send_notification_email and permission.role == "owner":
        raise DriveError(
            403,
            "forbidden",
            "sendNotificationEmail must be true to transfer ownership.",
            "sendNotificationEmail",
        )
    before = _audiences(state, file)
    if permission.role == "owner":
        previous = file.owner
        file.owner = permission.email
        file.permissions = [p for p in file.permissions if p.id != permission.id]
        if previous:
            file.permissions.append(
                Permission(permission_id("user", previous), "user", "writer", email=previous)
            )
    else:
        file.permissions = [p for p in file.permissions if p.id != permission.id]
        file.permissions.append(permission)
    state.notifications.append(
        {
            "file_id": file.id,
            "permission_id": permission.id,
            "type": permission.type,
            "role": permission.role,
            "recipient": permission.email,
            "sent_by": email,
            "send_notification_email": send_notification_email,
            "email_sent": send_notification_email and permission.type in ("user", "group"),
            "message": email_message,
            "at": rfc3339(emulator.clock.now()),
        }
    )
    _permission_changed(state, emulator, file, before, email)
    return partial(
        permission_json(permission, file), fields, DEFAULT_PERMISSION_FIELDS, "Permission"
    )


@router.get("/drive/v3/files/{file_id}/permissions")
async def permissions_list(
    request: Request,
    file_id: str,
    fields: str | None = None,
    page_size: int = Query(100, alias="pageSize", ge=1, le=100),
    page_token: str | None = Query(None, alias="pageToken"),
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> dict[str, Any]:
    """drive.permissions.list: the file's own grants (and its owner's)"""
    method = "drive.permissions.list"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    file = _file(state, emulator, email, file_id, supports_all_drives)
    every = _all_permissions(file)
    start = _offset(page_token)
    body: dict[str, Any] = {
        "kind": "drive#permissionList",
        "permissions": [permission_json(p, file) for p in every[start : start + page_size]],
    }
    if start + page_size < len(every):
        body["nextPageToken"] = base64.urlsafe_b64encode(f"o:{start + page_size}".encode()).decode()
    default = "kind,nextPageToken,permissions(kind,id,type,role,emailAddress,domain)"
    return partial(body, fields, default, "PermissionList")


def _permission(file: DriveFile, permission_id_: str) -> Permission:
    for permission in _all_permissions(file):
        if permission.id == permission_id_:
            return permission
    raise DriveError(404, "notFound", f"Permission not found: {permission_id_}.", "permissionId")


@router.get("/drive/v3/files/{file_id}/permissions/{permission_id}")
async def permissions_get(
    request: Request,
    file_id: str,
    permission_id: str,
    fields: str | None = None,
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> dict[str, Any]:
    """drive.permissions.get"""
    emulator, email = await _begin(request, "drive.permissions.get")
    state = drive_state(emulator)
    file = _file(state, emulator, email, file_id, supports_all_drives)
    found = _permission(file, permission_id)
    return partial(permission_json(found, file), fields, DEFAULT_PERMISSION_FIELDS, "Permission")


@router.patch("/drive/v3/files/{file_id}/permissions/{permission_id}")
async def permissions_update(
    request: Request,
    file_id: str,
    permission_id: str,
    fields: str | None = None,
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> dict[str, Any]:
    """drive.permissions.update: a grant's role"""
    emulator, email = await _begin(request, "drive.permissions.update")
    state = drive_state(emulator)
    file = _file(state, emulator, email, file_id, supports_all_drives)
    require_role(state, email, file, "writer")
    found = _permission(file, permission_id)
    body = await _json_body(request)
    role = body.get("role", found.role)
    if role not in ROLE_RANK or role == "owner":
        raise _bad("Invalid permission role.", "permission.role")
    if found.role == "owner":
        raise DriveError(
            403, "cannotModifyOwner", "The owner's role cannot change.", "permissionId"
        )
    if role in SHARED_DRIVE_ROLES and file.drive_id is None:
        raise DriveError(
            403,
            "invalidSharingRequest",
            f"The {role} role is only for items in a shared drive.",
            "permission.role",
        )
    before = _audiences(state, file)
    found.role = role
    _permission_changed(state, emulator, file, before, email)
    return partial(permission_json(found, file), fields, DEFAULT_PERMISSION_FIELDS, "Permission")


@router.delete("/drive/v3/files/{file_id}/permissions/{permission_id}", status_code=204)
async def permissions_delete(
    request: Request,
    file_id: str,
    permission_id: str,
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> Response:
    """drive.permissions.delete: a grant taken back (never the owner's)"""
    emulator, email = await _begin(request, "drive.permissions.delete")
    state = drive_state(emulator)
    file = _file(state, emulator, email, file_id, supports_all_drives)
    require_role(state, email, file, "writer")
    found = _permission(file, permission_id)
    if found.role == "owner":
        raise DriveError(
            403,
            "cannotDeletePermission",
            "The owner's permission cannot be deleted.",
            "permissionId",
        )
    before = _audiences(state, file)
    file.permissions = [p for p in file.permissions if p.id != found.id]
    _permission_changed(state, emulator, file, before, email)
    return Response(status_code=204)


# --- changes ----------------------------------------------------------------------------------


def _sees_change(
    state: DriveState, email: str, change: DriveChange, drive_id: str | None, include_all: bool
) -> bool:
    if drive_id is not None:
        drive = state.drives.get(drive_id)
        return change.drive_id == drive_id and drive is not None and email in drive.members
    if change.drive_id is not None and not include_all:
        return False
    domain = email.rpartition("@")[2]
    return email in change.audience or domain in change.domains


def _corpus(
    state: DriveState,
    email: str,
    drive_id: str | None,
    include_all: bool,
    supports_all: bool,
) -> None:
    if include_all and not supports_all:
        raise DriveError(
            403,
            "teamDrivesParameterRequired",
            "includeItemsFromAllDrives requires supportsAllDrives.",
            "supportsAllDrives",
        )
    if drive_id is not None:
        drive = state.drives.get(drive_id)
        if drive is None or email not in drive.members or not supports_all:
            raise DriveError(404, "notFound", f"Shared drive not found: {drive_id}", "driveId")


def _position(state: DriveState, page_token: str) -> int:
    if not page_token.isdigit() or not 1 <= int(page_token) <= state.change_seq + 1:
        raise _bad("Invalid Value", "pageToken")
    return int(page_token)


@router.get("/drive/v3/changes/startPageToken")
async def changes_start_page_token(
    request: Request,
    drive_id: str | None = Query(None, alias="driveId"),
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
    fields: str | None = None,
) -> dict[str, Any]:
    """drive.changes.getStartPageToken: where the changes from now on begin"""
    emulator, email = await _begin(request, "drive.changes.getStartPageToken")
    state = drive_state(emulator)
    _corpus(state, email, drive_id, False, supports_all_drives)
    body = {"kind": "drive#startPageToken", "startPageToken": str(state.change_seq + 1)}
    return partial(body, fields, "kind,startPageToken", "StartPageToken")


@router.get("/drive/v3/changes")
async def changes_list(
    request: Request,
    page_token: str = Query(alias="pageToken"),
    page_size: int = Query(100, alias="pageSize", ge=1, le=1000),
    include_removed: bool = Query(True, alias="includeRemoved"),
    drive_id: str | None = Query(None, alias="driveId"),
    include_all: bool = Query(False, alias="includeItemsFromAllDrives"),
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
    restrict_to_my_drive: bool = Query(False, alias="restrictToMyDrive"),
    fields: str | None = None,
) -> dict[str, Any]:
    """drive.changes.list: the changes from ``pageToken`` on, a page at a time; the last page
    carries ``newStartPageToken``"""
    emulator, email = await _begin(request, "drive.changes.list")
    state = drive_state(emulator)
    _corpus(state, email, drive_id, include_all, supports_all_drives)
    start = _position(state, page_token)
    entries: list[dict[str, Any]] = []
    next_position: int | None = None
    for change in state.changes:
        if change.number < start:
            continue
        if not _sees_change(state, email, change, drive_id, include_all or drive_id is not None):
            continue
        file = state.files.get(change.file_id)
        if restrict_to_my_drive and change.drive_id is not None:
            continue
        if len(entries) == page_size:
            next_position = change.number
            break
        entry: dict[str, Any] = {
            "kind": "drive#change",
            "changeType": "file",
            "time": rfc3339(change.time),
            "fileId": change.file_id,
        }
        all_drives = supports_all_drives or drive_id is not None
        if file is not None and not change.removed and _visible(state, email, file, all_drives):
            entry["removed"] = False
            entry["file"] = file_json(state, file, email)
        else:
            if not include_removed:
                continue
            entry["removed"] = True
        if change.drive_id is not None:
            entry["driveId"] = change.drive_id
        entries.append(entry)
    body: dict[str, Any] = {"kind": "drive#changeList", "changes": entries}
    if next_position is not None:
        body["nextPageToken"] = str(next_position)
    else:
        body["newStartPageToken"] = str(state.change_seq + 1)
    return partial(body, fields, DEFAULT_CHANGE_FIELDS, "ChangeList")


# --- push channels ----------------------------------------------------------------------------


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post("/drive/v3/changes/watch")
async def changes_watch(
    request: Request,
    page_token: str = Query(alias="pageToken"),
    drive_id: str | None = Query(None, alias="driveId"),
    include_all: bool = Query(False, alias="includeItemsFromAllDrives"),
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> dict[str, Any]:
    """drive.changes.watch: a channel posting ``change`` whenever the caller's change log
    grows"""
    emulator, email = await _begin(request, "drive.changes.watch")
    state = drive_state(emulator)
    _corpus(state, email, drive_id, include_all, supports_all_drives)
    _position(state, page_token)
    uri = f"{_base(request)}/drive/v3/changes?alt=json&pageToken={page_token}"
    channel = open_channel(
        await _json_body(request),
        existing=state.channels,
        owner=email,
        resource_uri=uri,
        now=emulator.clock.now(),
        default_ttl=DEFAULT_CHANNEL_TTL,
        max_ttl=MAX_CHANGES_CHANNEL_TTL,
    )
    channel.watched = {
        "kind": "changes",
        "drive_id": drive_id,
        "include_all": include_all or drive_id is not None,
    }
    state.channels[channel.id] = channel
    deliveries_of(state).send(channel, "sync")
    return channel.answer()


@router.post("/drive/v3/files/{file_id}/watch")
async def files_watch(
    request: Request,
    file_id: str,
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> dict[str, Any]:
    """drive.files.watch: a channel posting each change of one file or folder"""
    emulator, email = await _begin(request, "drive.files.watch")
    state = drive_state(emulator)
    file = _file(state, emulator, email, file_id, supports_all_drives)
    channel = open_channel(
        await _json_body(request),
        existing=state.channels,
        owner=email,
        resource_uri=f"{_base(request)}/drive/v3/files/{file.id}?alt=json",
        now=emulator.clock.now(),
        default_ttl=DEFAULT_CHANNEL_TTL,
        max_ttl=MAX_FILE_CHANNEL_TTL,
    )
    channel.watched = {"kind": "file", "file_id": file.id}
    state.channels[channel.id] = channel
    deliveries_of(state).send(channel, "sync")
    return channel.answer()


@router.post("/drive/v3/channels/stop", status_code=204)
async def channels_stop(request: Request) -> Response:
    """drive.channels.stop"""
    emulator, email = await _begin(request, "drive.channels.stop")
    state = drive_state(emulator)
    stop_channel(await _json_body(request), state.channels, email)
    return Response(status_code=204)


def _notify(
    state: DriveState,
    emulator: Emulator,
    change: DriveChange | None,
    file: DriveFile,
    resource_state: str,
    changed: frozenset[str],
) -> None:
    """A change, posted to every live channel that watches it (``change`` None: only the
    file's own watchers hear of it)."""
    now = emulator.clock.now()
    for channel in state.channels.values():
        if not isinstance(channel, PushChannel) or not channel.live(now):
            continue
        watched = channel.watched
        if watched.get("kind") == "changes":
            if change is not None and _sees_change(
                state, channel.owner, change, watched.get("drive_id"), bool(watched["include_all"])
            ):
                deliveries_of(state).send(channel, "change")
        elif watched.get("file_id") == file.id:
            extra = {"X-Goog-Changed": ",".join(sorted(changed))} if changed else {}
            deliveries_of(state).send(channel, resource_state, extra)


CHANGE_LISTENERS.append(_notify)


# --- test controls ----------------------------------------------------------------------------


@admin_router.get("/notifications")
async def sharing_notifications(request: Request) -> list[dict[str, Any]]:
    """Every share made so far, with whether Google would have e-mailed the grantee."""
    return list(drive_state(emulator_of(request)).notifications)


@admin_router.get("/files/{file_id}/permissions")
async def file_permissions(request: Request, file_id: str) -> list[dict[str, Any]]:
    """A file's own grants (and its owner's), whoever asks."""
    file = drive_state(emulator_of(request)).files.get(file_id)
    if file is None:
        raise GoogleError(404, "notFound", f"File not found: {file_id}.")
    return [permission_json(p, file) for p in _all_permissions(file)]


@admin_router.get("/channels")
async def drive_channels(request: Request) -> list[dict[str, Any]]:
    """Every Drive push channel opened so far, with its expiry (on the emulator's clock)."""
    emulator = emulator_of(request)
    now = emulator.clock.now()
    return [
        {
            "id": channel.id,
            "resource_id": channel.resource_id,
            "owner": channel.owner,
            "address": channel.address,
            "watched": channel.watched,
            "expiration": rfc3339(channel.expiration),
            "stopped": channel.stopped,
            "expired": channel.expiration <= now,
        }
        for channel in drive_state(emulator).channels.values()
    ]


@admin_router.get("/deliveries")
async def drive_deliveries(request: Request) -> dict[str, Any]:
    """Every push notification posted so far, with its headers and the answer, and how many
    are still queued (which channels a change notifies is decided while it is answered, so at
    0 every notification it caused has been posted)."""
    deliveries = deliveries_of(drive_state(emulator_of(request)))
    return {"deliveries": list(deliveries.records), "in_flight": len(deliveries.tasks)}


__all__ = ["GoogleError", "admin_router", "router"]
