"""Google Drive API v3: files, folders, uploads, downloads, exports and shared drives.

Served at Google's paths (``/drive/v3/…`` and ``/upload/drive/v3/…``). Files live in one store
for the whole emulator: a file in My Drive belongs to its owner, one in a shared drive to the
drive's members. File content is kept on disk, never whole in memory, so a large upload or
download costs the emulator a chunk at a time. A fault of Drive's own kind, beside the ones every
product has (including "store it, then fail the answer"): a resumable upload cut after a number
of bytes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import shutil
import tempfile
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from google_emulator.core import Emulator, GoogleError, begin, emulator_of, rfc3339
from google_emulator.drive_query import QueryError, parse_query
from google_emulator.fidelity import discovery_document, find_method
from google_emulator.push import Deliveries, PushChannel

FOLDER = "application/vnd.google-apps.folder"
GOOGLE_APPS = "application/vnd.google-apps."
DOCUMENT = GOOGLE_APPS + "document"
SPREADSHEET = GOOGLE_APPS + "spreadsheet"
PRESENTATION = GOOGLE_APPS + "presentation"
# What each Docs Editors type exports to.
EXPORTS: dict[str, tuple[str, ...]] = {
    DOCUMENT: ("text/plain", "text/html", "application/pdf", "text/markdown"),
    SPREADSHEET: ("text/csv", "application/pdf"),
    PRESENTATION: ("text/plain", "application/pdf"),
}
# Uploaded media a Docs Editors type may be converted from.
CONVERTIBLE = {DOCUMENT: "text/", SPREADSHEET: "text/csv", PRESENTATION: "text/"}
# Scopes that grant only part of Drive (files the app made, app data, photos…): the emulator does
# not model those parts, so it accepts none of them rather than granting more than Google would.
PARTIAL_SCOPES = frozenset(
    "https://www.googleapis.com/auth/drive." + name
    for name in ("file", "appdata", "photos.readonly", "meet.readonly", "scripts", "apps.readonly")
)
DEFAULT_FILE_FIELDS = "kind,id,name,mimeType"
DEFAULT_LIST_FIELDS = "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)"
DEFAULT_DRIVE_FIELDS = "kind,id,name"
MEDIA_CHUNK = 256 * 1024

# Called with (state, emulator, change, file, resource state, what changed) after each change:
# the push channels' hook (``drive_changes`` adds it).
CHANGE_LISTENERS: list[Any] = []

router = APIRouter()
admin_router = APIRouter(prefix="/_emulator/drive")


def scopes_of(api_method: str) -> tuple[str, ...]:
    """The scopes Google's discovery document accepts for a method, less the partial ones."""
    found = find_method(api_method)
    assert found is not None, api_method
    return tuple(scope for scope in found[1]["scopes"] if scope not in PARTIAL_SCOPES)


async def _begin(request: Request, api_method: str) -> tuple[Emulator, str]:
    """``begin``, then the caller's token must hold a scope granting all of Drive: the partial
    scopes (``PARTIAL_SCOPES``) are not modelled, so they are refused rather than over-granted."""
    emulator, email = await begin(request, api_method)
    emulator.authorize(request, scopes_of(api_method))
    return emulator, email


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    created: datetime
    modified: datetime
    owner: str | None  # My Drive: the owner's email; None in a shared drive
    drive_id: str | None = None
    trashed: bool = False
    explicitly_trashed: bool = False
    trashed_time: datetime | None = None
    starred: bool = False
    description: str | None = None
    app_properties: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    content: Path | None = None  # binary content on disk
    size: int = 0
    md5: str | None = None
    text: str | None = None  # a Docs Editors file's content
    original_filename: str | None = None
    version: int = 1
    is_root: bool = False
    permissions: list[Permission] = field(default_factory=list)
    last_modifier: str | None = None  # the email of who changed it last

    def full_text(self) -> str:
        parts = [self.name, self.description or "", self.text or ""]
        if self.content is not None and self.mime_type.startswith("text/") and self.size < 2**20:
            parts.append(self.content.read_text(errors="replace"))
        return " ".join(parts)


@dataclass
class Permission:
    """One grant on a file or folder (inherited by what is inside a folder)."""

    id: str
    type: str  # user, group, domain, anyone
    role: str  # owner, organizer, fileOrganizer, writer, commenter, reader
    email: str | None = None
    domain: str | None = None
    allow_discovery: bool = False


@dataclass
class DriveChange:
    """One entry of the change log: a file changed, or left (``removed``) for the ``audience``
    who could see it then."""

    number: int
    file_id: str
    time: datetime
    removed: bool
    drive_id: str | None
    audience: frozenset[str]
    domains: frozenset[str]


@dataclass
class SharedDrive:
    id: str
    name: str
    created: datetime
    request_id: str
    members: set[str]


@dataclass
class UploadSession:
    id: str
    user: str
    api_method: str
    metadata: dict[str, Any]
    params: dict[str, str]
    mime_type: str
    total: int | None
    content: Path
    file_id: str | None = None  # an update of this file; None: a new file
    received: int = 0
    digest: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    finished: dict[str, Any] | None = None


@dataclass
class UploadCut:
    """The next resumable chunk of ``user`` crossing ``after_bytes`` is cut there (a 503)."""

    user: str | None
    after_bytes: int


@dataclass
class DriveState:
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="emulator-drive-")))
    files: dict[str, DriveFile] = field(default_factory=dict)
    drives: dict[str, SharedDrive] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, UploadSession] = field(default_factory=dict)
    cuts: list[UploadCut] = field(default_factory=list)
    generated: dict[str, str] = field(default_factory=dict)  # id → the user it was made for
    changes: list[DriveChange] = field(default_factory=list)
    change_seq: int = 0
    channels: dict[str, PushChannel] = field(default_factory=dict)
    deliveries: Deliveries = field(default_factory=Deliveries)
    notifications: list[dict[str, Any]] = field(default_factory=list)  # sharing e-mails

    def __post_init__(self) -> None:
        # The content goes when the state does (an emulator reset, the process ending).
        weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def blob(self) -> Path:
        return self.folder / secrets.token_hex(12)


def drive_state(emulator: Emulator) -> DriveState:
    state = emulator.apis.setdefault("drive", DriveState())
    assert isinstance(state, DriveState)
    return state


def _new_id() -> str:
    return "1" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")


class DriveError(GoogleError):
    """A Drive error naming the parameter at fault, as Drive's errors do."""

    def __init__(self, code: int, reason: str, message: str, location: str) -> None:
        super().__init__(code, reason, message)
        self.location = location

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [
                    {
                        "domain": self.domain,
                        "reason": self.reason,
                        "message": self.message,
                        "locationType": "parameter",
                        "location": self.location,
                    }
                ],
            }
        }
        return JSONResponse(body, status_code=self.code, headers=self.headers)


def _not_found(file_id: str) -> GoogleError:
    return DriveError(404, "notFound", f"File not found: {file_id}.", "fileId")


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


def root_of(state: DriveState, emulator: Emulator, email: str) -> DriveFile:
    """The user's My Drive root folder, made on first use."""
    found = state.roots.get(email)
    if found is not None:
        return state.files[found]
    now = emulator.clock.now()
    root = DriveFile(
        id="0A" + _new_id()[1:20],
        name="My Drive",
        mime_type=FOLDER,
        parents=[],
        created=now,
        modified=now,
        owner=email,
        is_root=True,
    )
    state.files[root.id] = root
    state.roots[email] = root.id
    return root


ROLE_RANK = {"reader": 1, "commenter": 2, "writer": 3, "fileOrganizer": 4, "organizer": 5}
ROLE_RANK["owner"] = 6


def ancestors(state: DriveState, file: DriveFile) -> list[DriveFile]:
    """The folders above ``file``, nearest first."""
    found: list[DriveFile] = []
    current = file
    while current.parents:
        parent = state.files.get(current.parents[0])
        if parent is None or parent in found:
            break
        found.append(parent)
        current = parent
    return found


def role_of(state: DriveState, email: str, file: DriveFile) -> str | None:
    """The caller's role on ``file``: its owner's, a shared drive member's (organizer), or the
    best grant on it or on a folder above it (an owner of such a folder writes)."""
    if file.drive_id is not None:
        drive = state.drives.get(file.drive_id)
        if drive is not None and email in drive.members:
            return "organizer"
    elif file.owner == email:
        return "owner"
    best: str | None = None
    domain = email.rpartition("@")[2]
    for holder in [file, *ancestors(state, file)]:
        granted: list[str] = []
        if holder is not file and holder.drive_id is None and holder.owner == email:
            granted.append("writer")
        for permission in holder.permissions:
            if (
                (permission.type == "user" and permission.email == email)
                or (permission.type == "domain" and permission.domain == domain)
                or permission.type == "anyone"
            ):
                granted.append(permission.role)
        for role in granted:
            if best is None or ROLE_RANK[role] > ROLE_RANK[best]:
                best = role
    return best


def _visible(state: DriveState, email: str, file: DriveFile, all_drives: bool) -> bool:
    if file.drive_id is not None and not all_drives:
        return False
    return role_of(state, email, file) is not None


def require_role(state: DriveState, email: str, file: DriveFile, least: str) -> None:
    """Google's ``403 insufficientFilePermissions`` unless the caller holds ``least`` or more."""
    role = role_of(state, email, file)
    if file.is_root and file.owner == email:
        return
    if role is None or ROLE_RANK[role] < ROLE_RANK[least]:
        raise GoogleError(
            403,
            "insufficientFilePermissions",
            "The user does not have sufficient permissions for this file.",
        )


def audience(state: DriveState, file: DriveFile) -> tuple[frozenset[str], frozenset[str]]:
    """(the emails, the domains) that can see ``file`` now."""
    emails: set[str] = set()
    domains: set[str] = set()
    if file.drive_id is not None:
        drive = state.drives.get(file.drive_id)
        emails |= drive.members if drive is not None else set()
    elif file.owner:
        emails.add(file.owner)
    for holder in [file, *ancestors(state, file)]:
        if holder.drive_id is None and holder.owner:
            emails.add(holder.owner)
        for permission in holder.permissions:
            if permission.type == "user" and permission.email:
                emails.add(permission.email)
            elif permission.type == "domain" and permission.domain:
                domains.add(permission.domain)
    return frozenset(emails), frozenset(domains)


def record_change(
    state: DriveState,
    emulator: Emulator,
    file: DriveFile,
    resource_state: str,
    changed: Iterable[str] = (),
    *,
    removed: bool = False,
    before: tuple[frozenset[str], frozenset[str]] | None = None,
) -> None:
    """Log a change of ``file`` for everyone who could see it (before and after), and tell the
    listeners (push channels): ``resource_state`` is files.watch's (add, update, trash,
    untrash, remove), ``changed`` its ``X-Goog-Changed`` parts."""
    emails, domains = audience(state, file)
    if before is not None:
        emails, domains = emails | before[0], domains | before[1]
    state.change_seq += 1
    change = DriveChange(
        number=state.change_seq,
        file_id=file.id,
        time=emulator.clock.now(),
        removed=removed,
        drive_id=file.drive_id,
        audience=emails,
        domains=domains,
    )
    state.changes.append(change)
    for listener in CHANGE_LISTENERS:
        listener(state, emulator, change, file, resource_state, frozenset(changed))


def children_changed(state: DriveState, emulator: Emulator, folder_id: str) -> None:
    """A file came into or left a folder: the folder's watchers hear of it (the folder itself
    is not changed, so the change log has no entry)."""
    folder = state.files.get(folder_id)
    if folder is None:
        return
    for listener in CHANGE_LISTENERS:
        listener(state, emulator, None, folder, "update", frozenset({"children"}))


def _file(
    state: DriveState, emulator: Emulator, email: str, file_id: str, all_drives: bool
) -> DriveFile:
    if file_id == "root":
        return root_of(state, emulator, email)
    found = state.files.get(file_id)
    if found is None or not _visible(state, email, found, all_drives):
        raise _not_found(file_id)
    return found


def _drive_root(state: DriveState, email: str, drive_id: str, all_drives: bool) -> SharedDrive:
    drive = state.drives.get(drive_id)
    if drive is None or email not in drive.members or not all_drives:
        raise DriveError(404, "notFound", f"File not found: {drive_id}.", "fileId")
    return drive


# --- partial responses ------------------------------------------------------------------------


Selection = dict[str, "Selection | None"]


def parse_fields(text: str) -> Selection:
    """``files(id,name),nextPageToken`` → ``{"files": {"id": None, "name": None}, …}``."""
    selection: Selection = {}
    position = 0

    def parse_list(until: str | None) -> Selection:
        nonlocal position
        result: Selection = {}
        while position < len(text):
            match = re.compile(r"\s*([A-Za-z*][A-Za-z0-9_*]*(?:/[A-Za-z*][A-Za-z0-9_*]*)*)\s*")
            found = match.match(text, position)
            if found is None:
                raise DriveError(400, "invalidParameter", "Invalid field selection", "fields")
            path = found.group(1).split("/")
            position = found.end()
            sub: Selection | None = None
            if position < len(text) and text[position] == "(":
                position += 1
                sub = parse_list(")")
            target = result
            for name in path[:-1]:
                nested = target.get(name) or {}
                target[name] = nested
                target = nested
            target[path[-1]] = sub
            if position < len(text) and text[position] == ",":
                position += 1
                continue
            if until is not None and position < len(text) and text[position] == until:
                position += 1
                return result
            if position < len(text):
                raise DriveError(400, "invalidParameter", "Invalid field selection", "fields")
        if until is not None:
            raise DriveError(400, "invalidParameter", "Invalid field selection", "fields")
        return result

    selection = parse_list(None)
    return selection


def select(value: Any, selection: Selection | None, schema: dict[str, Any], where: str) -> Any:
    """``value`` cut down to ``selection``; a field the schema lacks is Google's 400."""
    schemas = discovery_document("drive.v3")["schemas"]
    while "$ref" in schema:
        schema = schemas[schema["$ref"]]
    if selection is None or "*" in selection:
        return value
    if isinstance(value, list):
        return [select(item, selection, schema.get("items", {}), where) for item in value]
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties", {})
    chosen: dict[str, Any] = {}
    for name, sub in selection.items():
        if name not in properties and "additionalProperties" not in schema:
            message = f"Invalid field selection {name}"
            raise DriveError(400, "invalidParameter", message, "fields")
        if name in value:
            inner = properties.get(name) or schema.get("additionalProperties") or {}
            chosen[name] = select(value[name], sub, inner, f"{where}.{name}")
    return chosen


def partial(body: dict[str, Any], fields: str | None, default: str, schema: str) -> dict[str, Any]:
    """The response Google sends for ``fields`` (its own few fields when not asked)."""
    selection = parse_fields(fields or default)
    result: dict[str, Any] = select(body, selection, {"$ref": schema}, "$")
    return result


# --- resources --------------------------------------------------------------------------------


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def file_json(state: DriveState, file: DriveFile, email: str) -> dict[str, Any]:
    """The whole resource; ``partial`` cuts it to what the caller asked for."""
    body: dict[str, Any] = {
        "kind": "drive#file",
        "id": file.id,
        "name": file.name,
        "mimeType": file.mime_type,
        "parents": list(file.parents),
        "trashed": file.trashed,
        "explicitlyTrashed": file.explicitly_trashed,
        "starred": file.starred,
        "createdTime": rfc3339(file.created),
        "modifiedTime": rfc3339(file.modified),
        "version": str(file.version),
        "appProperties": dict(file.app_properties),
        "properties": dict(file.properties),
        "spaces": ["drive"],
        "webViewLink": _view_link(file),
        "iconLink": f"https://drive-thirdparty.googleusercontent.com/16/type/{file.mime_type}",
        "quotaBytesUsed": str(file.size),
    }
    if file.trashed_time is not None:
        body["trashedTime"] = rfc3339(file.trashed_time)
    modifier = file.last_modifier or file.owner
    if modifier:
        body["lastModifyingUser"] = {
            "kind": "drive#user",
            "emailAddress": modifier,
            "displayName": modifier,
            "me": modifier == email,
        }
    body["permissionIds"] = [p.id for p in file.permissions]
    role = role_of(state, email, file) if email else None
    body["capabilities"] = {
        "canEdit": role is not None and ROLE_RANK[role] >= ROLE_RANK["writer"],
        "canShare": role is not None and ROLE_RANK[role] >= ROLE_RANK["writer"],
        "canComment": role is not None and ROLE_RANK[role] >= ROLE_RANK["commenter"],
    }
    if file.description is not None:
        body["description"] = file.description
    if file.drive_id is not None:
        body["driveId"] = file.drive_id
    else:
        owner = file.owner or ""
        body["ownedByMe"] = owner == email
        body["owners"] = [
            {
                "kind": "drive#user",
                "emailAddress": owner,
                "displayName": owner,
                "me": owner == email,
            }
        ]
    if file.content is not None:
        body["size"] = str(file.size)
        body["md5Checksum"] = file.md5 or ""
        body["webContentLink"] = f"https://drive.google.com/uc?id={file.id}&export=download"
        if file.original_filename is not None:
            body["originalFilename"] = file.original_filename
            extension = file.original_filename.rpartition(".")[2]
            if "." in file.original_filename and extension:
                body["fileExtension"] = body["fullFileExtension"] = extension
    if file.mime_type in EXPORTS:
        body["exportLinks"] = {
            target: f"https://docs.google.com/feeds/download/export?id={file.id}&exportFormat="
            + target.rpartition("/")[2]
            for target in EXPORTS[file.mime_type]
        }
    return body


def _view_link(file: DriveFile) -> str:
    if file.mime_type == FOLDER:
        return f"https://drive.google.com/drive/folders/{file.id}"
    kind = {DOCUMENT: "document", SPREADSHEET: "spreadsheets", PRESENTATION: "presentation"}
    if file.mime_type in kind:
        return f"https://docs.google.com/{kind[file.mime_type]}/d/{file.id}/edit"
    return f"https://drive.google.com/file/d/{file.id}/view"


def drive_json(drive: SharedDrive) -> dict[str, Any]:
    return {
        "kind": "drive#drive",
        "id": drive.id,
        "name": drive.name,
        "createdTime": rfc3339(drive.created),
        "hidden": False,
    }


# --- writing ----------------------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise GoogleError(400, "parseError", "Parse Error") from exc
    if not isinstance(body, dict):
        raise GoogleError(400, "badRequest", "The request body must be a JSON object.")
    return body


def _string_map(value: Any, name: str) -> dict[str, str | None]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise GoogleError(400, "invalid", f"Invalid value for {name}.")
    for key, item in value.items():
        if item is not None and not isinstance(item, str):
            raise GoogleError(400, "invalid", f"Invalid value for {name}.{key}.")
        if len(key.encode()) + len((item or "").encode()) > 124:
            message = f"The property {key} exceeds the maximum size of 124 bytes."
            raise GoogleError(400, "invalidProperty", message)
    return dict(value)


def _merge(target: dict[str, str], changes: dict[str, str | None]) -> None:
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    if len(target) > 30:
        raise GoogleError(400, "invalidProperty", "A file may carry at most 30 properties.")


def _parent_for(
    state: DriveState, emulator: Emulator, email: str, parent_id: str, all_drives: bool
) -> DriveFile:
    if parent_id in state.drives:
        drive = _drive_root(state, email, parent_id, all_drives)
        return DriveFile(
            id=drive.id,
            name=drive.name,
            mime_type=FOLDER,
            parents=[],
            created=drive.created,
            modified=drive.created,
            owner=None,
            drive_id=drive.id,
            is_root=True,
        )
    parent = _file(state, emulator, email, parent_id, all_drives)
    if parent.mime_type != FOLDER:
        raise DriveError(400, "invalid", "The parent is not a folder.", "parents")
    return parent


def new_file(
    state: DriveState,
    emulator: Emulator,
    email: str,
    metadata: dict[str, Any],
    all_drives: bool,
    media_type: str | None,
) -> DriveFile:
    """A file made from the metadata of a create (its content is set by the caller)."""
    parents = metadata.get("parents")
    if parents is not None and (
        not isinstance(parents, list) or not all(isinstance(p, str) for p in parents)
    ):
        raise GoogleError(400, "invalid", "Invalid value for parents.")
    if parents and len(parents) > 1:
        raise GoogleError(
            403, "cannotAddParent", "Increasing the number of parents is not allowed."
        )
    parent = _parent_for(state, emulator, email, parents[0] if parents else "root", all_drives)
    if not parent.is_root:
        require_role(state, email, parent, "writer")
    name = metadata.get("name", "Untitled")
    if not isinstance(name, str):
        raise GoogleError(400, "invalid", "Invalid value for name.")
    mime_type = metadata.get("mimeType") or media_type or "application/octet-stream"
    if not isinstance(mime_type, str):
        raise GoogleError(400, "invalid", "Invalid value for mimeType.")
    now = emulator.clock.now()
    file = DriveFile(
        id=_chosen_id(state, email, metadata.get("id")),
        name=name,
        mime_type=mime_type,
        parents=[parent.id],
        created=now,
        modified=now,
        owner=None if parent.drive_id else email,
        drive_id=parent.drive_id,
    )
    _apply_metadata(file, metadata)
    if parent.trashed:
        file.trashed = True
        file.trashed_time = now
    return file


def _chosen_id(state: DriveState, email: str, chosen: Any) -> str:
    """The id a create asked for (one ``generateIds`` made for this user), or a new one."""
    if chosen is None:
        return _new_id()
    if not isinstance(chosen, str) or state.generated.get(chosen) != email:
        raise GoogleError(400, "invalid", "The provided file ID is not usable.")
    if chosen in state.files:
        raise GoogleError(409, "duplicate", "A file already exists with the provided ID.")
    return chosen


def _apply_metadata(file: DriveFile, metadata: dict[str, Any]) -> None:
    if "name" in metadata:
        name = metadata["name"]
        if not isinstance(name, str):
            raise GoogleError(400, "invalid", "Invalid value for name.")
        file.name = name
    if "description" in metadata:
        description = metadata["description"]
        if description is not None and not isinstance(description, str):
            raise GoogleError(400, "invalid", "Invalid value for description.")
        file.description = description
    if "starred" in metadata:
        file.starred = bool(metadata["starred"])
    if "appProperties" in metadata:
        _merge(file.app_properties, _string_map(metadata["appProperties"], "appProperties"))
    if "properties" in metadata:
        _merge(file.properties, _string_map(metadata["properties"], "properties"))


def _store_media(
    state: DriveState, file: DriveFile, media_type: str, path: Path, size: int, md5: str
) -> None:
    """Give ``file`` the uploaded content at ``path`` (converted when it is a Docs type)."""
    if file.mime_type == FOLDER:
        path.unlink(missing_ok=True)
        raise GoogleError(400, "badRequest", "A folder cannot have content.")
    if file.mime_type in EXPORTS:
        if not media_type.startswith(CONVERTIBLE[file.mime_type]):
            path.unlink(missing_ok=True)
            raise GoogleError(400, "badRequest", f"Cannot convert {media_type} to a Google Doc.")
        file.text = path.read_text(errors="replace")
        path.unlink(missing_ok=True)
        return
    if file.content is not None:
        file.content.unlink(missing_ok=True)
    file.content, file.size, file.md5 = path, size, md5


def _descendants(state: DriveState, folder_id: str) -> list[DriveFile]:
    found: list[DriveFile] = []
    pending = [folder_id]
    while pending:
        current = pending.pop()
        for child in state.files.values():
            if current in child.parents and child not in found:
                found.append(child)
                pending.append(child.id)
    return found


def _set_trashed(
    state: DriveState, emulator: Emulator, file: DriveFile, trashed: bool, now: datetime
) -> None:
    if file.is_root:
        raise GoogleError(403, "cannotModifyRoot", "The root folder cannot be trashed.")
    if trashed == file.explicitly_trashed and trashed == file.trashed:
        return
    file.trashed = file.explicitly_trashed = trashed
    file.trashed_time = now if trashed else None
    for child in _descendants(state, file.id):
        if child.explicitly_trashed:
            continue
        child.trashed = trashed
        child.trashed_time = now if trashed else None
        record_change(state, emulator, child, "trash" if trashed else "untrash")


def _finish(
    request: Request,
    emulator: Emulator,
    state: DriveState,
    file: DriveFile,
    email: str,
    api_method: str,
    fields: str | None,
    resource_state: str = "add",
    changed: Iterable[str] = (),
) -> dict[str, Any]:
    state.files[file.id] = file
    file.last_modifier = email
    record_change(state, emulator, file, resource_state, changed)
    if resource_state == "add" and file.parents:
        children_changed(state, emulator, file.parents[0])
    return partial(file_json(state, file, email), fields, DEFAULT_FILE_FIELDS, "File")


# --- files ------------------------------------------------------------------------------------


@router.post("/drive/v3/files")
async def files_create(
    request: Request,
    fields: str | None = None,
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> dict[str, Any]:
    """drive.files.create without content (a folder, an empty file or Google Doc)"""
    method = "drive.files.create"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    metadata = await _json_body(request)
    file = new_file(state, emulator, email, metadata, supports_all_drives, None)
    if file.mime_type not in EXPORTS and file.mime_type != FOLDER:
        _store_media(state, file, file.mime_type, *_write(state, b""))
    return _finish(request, emulator, state, file, email, method, fields)


def multipart_related(content_type: str, raw: bytes) -> tuple[dict[str, Any], str, bytes]:
    """(metadata, media type, media) of a ``multipart/related`` upload body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None or not content_type.startswith("multipart/related"):
        raise GoogleError(400, "badContent", "Multipart upload needs multipart/related.")
    delimiter = b"--" + match.group(1).encode()
    parts = []
    for section in raw.split(delimiter)[1:]:
        if section.startswith(b"--"):
            break
        chunk = section[2:] if section.startswith(b"\r\n") else section.removeprefix(b"\n")
        ends = [(chunk.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n") if sep in chunk]
        if not ends:
            raise GoogleError(400, "badContent", "A multipart part has no headers.")
        _, separator = min(ends)
        head, _, body = chunk.partition(separator)
        body = body.removesuffix(b"\r\n") if body.endswith(b"\r\n") else body.removesuffix(b"\n")
        headers = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, body))
    if len(parts) != 2:
        raise GoogleError(400, "badContent", "A multipart upload has a metadata and a media part.")
    try:
        metadata = json.loads(parts[0][1] or b"{}")
    except ValueError as exc:
        raise GoogleError(400, "parseError", "Parse Error") from exc
    if not isinstance(metadata, dict):
        raise GoogleError(400, "badRequest", "The metadata must be a JSON object.")
    media_type = parts[1][0].get("content-type", "application/octet-stream")
    return metadata, media_type, parts[1][1]


def _write(state: DriveState, data: bytes) -> tuple[Path, int, str]:
    path = state.blob()
    path.write_bytes(data)
    return path, len(data), hashlib.md5(data, usedforsecurity=False).hexdigest()


async def _start_upload(
    request: Request,
    api_method: str,
    file_id: str | None,
    upload_type: str,
    fields: str | None,
    all_drives: bool,
    add_parents: str | None = None,
    remove_parents: str | None = None,
) -> Response:
    emulator, email = await _begin(request, api_method)
    state = drive_state(emulator)
    existing = _file(state, emulator, email, file_id, all_drives) if file_id else None
    if existing is not None:
        require_role(state, email, existing, "writer")
    content_type = request.headers.get("content-type", "application/octet-stream")
    if upload_type == "resumable":
        metadata = await _json_body(request)
        total_header = request.headers.get("x-upload-content-length")
        if total_header is not None and not total_header.isdigit():
            raise GoogleError(400, "badRequest", "Invalid X-Upload-Content-Length.")
        media_type = request.headers.get("x-upload-content-type", "application/octet-stream")
        if existing is None:
            new_file(state, emulator, email, metadata, all_drives, media_type)  # checked now
        session = UploadSession(
            id=secrets.token_urlsafe(24),
            user=email,
            api_method=api_method,
            metadata=metadata,
            params={
                "fields": fields or "",
                "supportsAllDrives": str(all_drives).lower(),
                "addParents": add_parents or "",
                "removeParents": remove_parents or "",
            },
            mime_type=media_type,
            total=int(total_header) if total_header is not None else None,
            content=state.blob(),
            file_id=file_id,
        )
        session.content.touch()
        state.sessions[session.id] = session
        where = f"/upload/drive/v3/files/{file_id}" if file_id else "/upload/drive/v3/files"
        location = f"{_base(request)}{where}?uploadType=resumable&upload_id={session.id}"
        return Response(status_code=200, headers={"Location": location})
    raw = await request.body()
    if upload_type == "multipart":
        metadata, media_type, data = multipart_related(content_type, raw)
    elif upload_type == "media":
        metadata, media_type, data = {}, content_type, raw
    else:
        raise DriveError(400, "invalid", f"Invalid upload type: {upload_type}", "uploadType")
    path, size, md5 = _write(state, data)
    file = _upsert(state, emulator, email, existing, metadata, media_type, all_drives)
    _parents_change(state, emulator, email, file, add_parents, remove_parents, all_drives)
    _store_media(state, file, media_type, path, size, md5)
    change = ("add", []) if existing is None else ("update", ["content"])
    return JSONResponse(_finish(request, emulator, state, file, email, api_method, fields, *change))


def _upsert(
    state: DriveState,
    emulator: Emulator,
    email: str,
    existing: DriveFile | None,
    metadata: dict[str, Any],
    media_type: str,
    all_drives: bool,
) -> DriveFile:
    if existing is None:
        file = new_file(state, emulator, email, metadata, all_drives, media_type)
    else:
        file = existing
        _apply_metadata(file, metadata)
        file.modified = emulator.clock.now()
        file.version += 1
    name = metadata.get("name")
    if existing is None and isinstance(name, str):
        file.original_filename = name
    return file


@router.post("/upload/drive/v3/files")
async def files_create_upload(
    request: Request,
    upload_type: str = Query("media", alias="uploadType"),
    fields: str | None = None,
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> Response:
    """drive.files.create with content: multipart, media or a resumable session"""
    return await _start_upload(
        request, "drive.files.create", None, upload_type, fields, supports_all_drives
    )


@router.patch("/upload/drive/v3/files/{file_id}")
async def files_update_upload(
    request: Request,
    file_id: str,
    upload_type: str = Query("media", alias="uploadType"),
    fields: str | None = None,
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
    add_parents: str | None = Query(None, alias="addParents"),
    remove_parents: str | None = Query(None, alias="removeParents"),
) -> Response:
    """drive.files.update with new content"""
    return await _start_upload(
        request,
        "drive.files.update",
        file_id,
        upload_type,
        fields,
        supports_all_drives,
        add_parents,
        remove_parents,
    )


CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")


def _uploaded_range(session: UploadSession) -> dict[str, str]:
    return {"Range": f"bytes=0-{session.received - 1}"} if session.received else {}


async def _resume_chunk(request: Request, upload_id: str) -> Response:
    emulator = emulator_of(request)
    state = drive_state(emulator)
    session = state.sessions.get(upload_id)
    if session is None:
        raise GoogleError(404, "notFound", "No such upload session.")
    request.state.api_method = session.api_method
    await emulator.apply_faults(session.api_method, session.user)
    request.state.emulator_user = session.user
    if session.finished is not None:
        return JSONResponse(session.finished)
    match = CONTENT_RANGE.fullmatch(request.headers.get("content-range", "bytes */*"))
    if match is None:
        raise GoogleError(400, "badRequest", "Invalid Content-Range.")
    first, last, total = match.groups()
    if total != "*":
        if session.total is not None and int(total) != session.total:
            raise GoogleError(400, "badRequest", "The upload's total size changed.")
        session.total = int(total)
    if first is None:  # a status query
        if session.total is not None and session.received == session.total:
            return await _complete(request, emulator, state, session)
        return Response(status_code=308, headers=_uploaded_range(session))
    if int(first) != session.received:
        # Google keeps what it has; the client must resume from the offset it reports.
        return Response(status_code=308, headers=_uploaded_range(session))
    await _receive(request, state, session, int(first), int(last))
    if session.total is not None and session.received >= session.total:
        return await _complete(request, emulator, state, session)
    return Response(status_code=308, headers=_uploaded_range(session))


async def _receive(
    request: Request, state: DriveState, session: UploadSession, first: int, last: int
) -> None:
    """Append a chunk to the session, or as much of it as an injected cut lets through."""
    expected = last - first + 1
    cut = next(
        (c for c in state.cuts if c.user in (None, session.user) and c.after_bytes < last + 1),
        None,
    )
    keep = expected if cut is None else max(0, cut.after_bytes - session.received)
    written = 0
    with session.content.open("ab") as sink:
        async for piece in request.stream():
            room = keep - written
            if room > 0:
                taken = piece[:room]
                sink.write(taken)
                session.digest.update(taken)
                written += len(taken)
    session.received += written
    if cut is not None:
        state.cuts.remove(cut)
        raise GoogleError(503, "backendError", "The upload was interrupted.")
    if written != expected:
        raise GoogleError(400, "badRequest", "The chunk is shorter than its Content-Range.")


async def _complete(
    request: Request, emulator: Emulator, state: DriveState, session: UploadSession
) -> Response:
    email = session.user
    all_drives = _truthy(session.params["supportsAllDrives"])
    existing = (
        _file(state, emulator, email, session.file_id, all_drives) if session.file_id else None
    )
    file = _upsert(
        state, emulator, email, existing, session.metadata, session.mime_type, all_drives
    )
    _parents_change(
        state,
        emulator,
        email,
        file,
        session.params["addParents"] or None,
        session.params["removeParents"] or None,
        all_drives,
    )
    _store_media(
        state,
        file,
        session.mime_type,
        session.content,
        session.received,
        session.digest.hexdigest(),
    )
    fields = session.params["fields"] or None
    change = ("add", []) if existing is None else ("update", ["content"])
    body = _finish(request, emulator, state, file, email, session.api_method, fields, *change)
    session.finished = body
    return JSONResponse(body)


@router.put("/upload/drive/v3/files")
async def resumable_create_chunk(
    request: Request, upload_id: str = Query(alias="upload_id")
) -> Response:
    """A chunk of a resumable create, or a status query (``Content-Range: bytes */total``)"""
    return await _resume_chunk(request, upload_id)


@router.put("/upload/drive/v3/files/{file_id}")
async def resumable_update_chunk(
    request: Request, file_id: str, upload_id: str = Query(alias="upload_id")
) -> Response:
    """A chunk of a resumable update, or a status query"""
    return await _resume_chunk(request, upload_id)


def _parents_change(
    state: DriveState,
    emulator: Emulator,
    email: str,
    file: DriveFile,
    add_parents: str | None,
    remove_parents: str | None,
    all_drives: bool,
) -> None:
    added = [p for p in (add_parents or "").split(",") if p]
    removed = [p for p in (remove_parents or "").split(",") if p]
    if not added and not removed:
        return
    if file.is_root:
        raise GoogleError(403, "cannotModifyRoot", "The root folder cannot be moved.")
    parents = [p for p in file.parents if p not in removed]
    for parent_id in added:
        parent = _parent_for(state, emulator, email, parent_id, all_drives)
        if parent.id == file.id or parent in _descendants(state, file.id):
            raise GoogleError(400, "invalid", "A folder cannot be moved into itself.")
        if parent.drive_id != file.drive_id:
            raise GoogleError(
                403, "cannotMoveAcrossDrives", "Moving between drives is not supported here."
            )
        if parent.id not in parents:
            parents.append(parent.id)
    if len(parents) != 1:
        raise GoogleError(
            403,
            "cannotAddParent",
            "A file must have exactly one parent: add one parent and remove the other.",
        )
    file.parents = parents


@router.get("/drive/v3/files")
async def files_list(
    request: Request,
    q: str | None = None,
    page_size: int = Query(100, alias="pageSize", ge=1, le=1000),
    page_token: str | None = Query(None, alias="pageToken"),
    order_by: str | None = Query(None, alias="orderBy"),
    fields: str | None = None,
    corpora: str | None = None,
    drive_id: str | None = Query(None, alias="driveId"),
    include_all: bool = Query(False, alias="includeItemsFromAllDrives"),
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> dict[str, Any]:
    """drive.files.list with the query grammar of ``drive_query``"""
    method = "drive.files.list"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    if include_all and not supports_all_drives:
        raise DriveError(
            403,
            "teamDrivesParameterRequired",
            "includeItemsFromAllDrives requires supportsAllDrives.",
            "supportsAllDrives",
        )
    if corpora not in (None, "user", "drive", "allDrives", "domain"):
        raise DriveError(400, "invalid", "Invalid Value", "corpora")
    if (corpora == "drive") != (drive_id is not None):
        raise DriveError(400, "invalid", "corpora=drive goes with a driveId", "driveId")
    if drive_id is not None:
        if not include_all:
            raise DriveError(
                403,
                "teamDrivesParameterRequired",
                "A driveId needs includeItemsFromAllDrives.",
                "includeItemsFromAllDrives",
            )
        _drive_root(state, email, drive_id, True)
    try:
        predicate = parse_query(q or "")
    except QueryError as exc:
        raise DriveError(400, "invalid", "Invalid Value", "q") from exc
    root_of(state, emulator, email)

    def in_corpus(file: DriveFile) -> bool:
        if file.is_root:
            return False
        if drive_id is not None:
            return file.drive_id == drive_id and _visible(state, email, file, True)
        if file.drive_id is not None and not include_all:
            return False
        return _visible(state, email, file, include_all)

    selected = [f for f in state.files.values() if in_corpus(f) and predicate(f)]
    selected.sort(key=lambda f: f.id)
    for key, descending in reversed(_order(order_by)):
        selected.sort(key=key, reverse=descending)
    start = _offset(page_token)
    page = selected[start : start + page_size]
    body: dict[str, Any] = {
        "kind": "drive#fileList",
        "incompleteSearch": False,
        "files": [file_json(state, f, email) for f in page],
    }
    if start + page_size < len(selected):
        token = base64.urlsafe_b64encode(f"o:{start + page_size}".encode()).decode()
        body["nextPageToken"] = token
    return partial(body, fields, DEFAULT_LIST_FIELDS, "FileList")


_ORDER_KEYS = {
    "name": lambda f: f.name.lower(),
    "name_natural": lambda f: f.name.lower(),
    "modifiedTime": lambda f: f.modified,
    "createdTime": lambda f: f.created,
    "folder": lambda f: f.mime_type != FOLDER,
    "starred": lambda f: f.starred,
    "quotaBytesUsed": lambda f: f.size,
}


def _order(order_by: str | None) -> list[tuple[Any, bool]]:
    keys = []
    for part in (order_by or "").split(","):
        words = part.split()
        if not words:
            continue
        if words[0] not in _ORDER_KEYS or len(words) > 2 or words[1:] not in ([], ["desc"]):
            raise DriveError(400, "invalid", "Invalid Value", "orderBy")
        keys.append((_ORDER_KEYS[words[0]], len(words) == 2))
    return keys


def _offset(page_token: str | None) -> int:
    if not page_token:
        return 0
    try:
        return max(
            0, int(base64.urlsafe_b64decode(page_token.encode()).decode().removeprefix("o:"))
        )
    except ValueError as exc:
        raise DriveError(400, "invalid", "Invalid Value", "pageToken") from exc


RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@router.get("/drive/v3/files/generateIds")
async def files_generate_ids(
    request: Request,
    count: int = Query(10, ge=1, le=1000),
    space: str = Query("drive"),
    kind: str = Query("files", alias="type"),
) -> dict[str, Any]:
    """drive.files.generateIds: ids a later create of this user may use"""
    method = "drive.files.generateIds"
    emulator, email = await _begin(request, method)
    if space != "drive" or kind not in {"files", "shortcuts"}:
        raise DriveError(400, "invalid", "Invalid Value", "space" if space != "drive" else "type")
    state = drive_state(emulator)
    ids = [_new_id() for _ in range(count)]
    state.generated.update(dict.fromkeys(ids, email))
    return {"kind": "drive#generatedIds", "space": space, "ids": ids}


@router.get("/drive/v3/files/{file_id}")
async def files_get(
    request: Request,
    file_id: str,
    alt: str = "json",
    fields: str | None = None,
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
    acknowledge_abuse: bool = Query(False, alias="acknowledgeAbuse"),
) -> Response:
    """drive.files.get: the metadata, or with ``alt=media`` the content (``Range`` honoured)"""
    method = "drive.files.get"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    file = _file(state, emulator, email, file_id, supports_all_drives)
    if alt == "json":
        body = partial(file_json(state, file, email), fields, DEFAULT_FILE_FIELDS, "File")
        return JSONResponse(body)
    if alt != "media":
        raise DriveError(400, "invalid", "Invalid Value", "alt")
    request.state.api_method = "drive.files.get.media"
    if file.content is None:
        raise DriveError(
            403,
            "fileNotDownloadable",
            "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
            "alt",
        )
    return _media(request, file.content, file.size, file.mime_type)


def _media(request: Request, path: Path, size: int, media_type: str) -> Response:
    header = request.headers.get("range")
    first, last, status = 0, size - 1, 200
    if header is not None:
        match = RANGE.fullmatch(header.strip())
        if match is None or match.groups() == ("", ""):
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        start, end = match.groups()
        if start == "":
            first, last = max(0, size - int(end)), size - 1
        else:
            first, last = int(start), min(int(end), size - 1) if end else size - 1
        if first >= size or first > last:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
    headers = {"Content-Length": str(last - first + 1), "Accept-Ranges": "bytes"}
    if status == 206:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(
        _read_range(path, first, last), status_code=status, media_type=media_type, headers=headers
    )


async def _read_range(path: Path, first: int, last: int) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        source.seek(first)
        remaining = last - first + 1
        while remaining > 0:
            piece = source.read(min(MEDIA_CHUNK, remaining))
            if not piece:
                return
            remaining -= len(piece)
            yield piece


@router.get("/drive/v3/files/{file_id}/export")
async def files_export(
    request: Request, file_id: str, mime_type: str = Query(alias="mimeType")
) -> Response:
    """drive.files.export: a Docs Editors file in one of its export formats"""
    method = "drive.files.export"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    # files.export takes no supportsAllDrives: shared drive files export as well.
    file = _file(state, emulator, email, file_id, True)
    formats = EXPORTS.get(file.mime_type)
    if formats is None:
        raise DriveError(
            403, "fileNotExportable", "Export only supports Docs Editors files.", "fileId"
        )
    if mime_type not in formats:
        raise DriveError(
            400, "badRequest", "The requested conversion is not supported.", "mimeType"
        )
    text = file.text or ""
    if mime_type == "text/html":
        data = f"<html><body><p>{html.escape(text)}</p></body></html>".encode()
    elif mime_type == "application/pdf":
        data = _pdf(text)
    else:
        data = text.encode()
    return Response(data, media_type=mime_type)


def _pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (the emulator's rendition of an export)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


@router.patch("/drive/v3/files/{file_id}")
async def files_update(
    request: Request,
    file_id: str,
    fields: str | None = None,
    add_parents: str | None = Query(None, alias="addParents"),
    remove_parents: str | None = Query(None, alias="removeParents"),
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> dict[str, Any]:
    """drive.files.update of metadata: name, description, trashed, appProperties, parents…"""
    method = "drive.files.update"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    file = _file(state, emulator, email, file_id, supports_all_drives)
    require_role(state, email, file, "writer")
    body = await _json_body(request)
    if "parents" in body:
        raise GoogleError(
            403,
            "fieldNotWritable",
            "The parents field is not directly writable in update requests. "
            "Use the addParents and removeParents parameters instead.",
        )
    if "mimeType" in body and body["mimeType"] != file.mime_type:
        raise GoogleError(403, "fieldNotWritable", "The mimeType of a file cannot be changed.")
    _apply_metadata(file, body)
    before = audience(state, file)
    old_parents = list(file.parents)
    _parents_change(state, emulator, email, file, add_parents, remove_parents, supports_all_drives)
    now = emulator.clock.now()
    resource_state, changed = "update", ["properties"] if set(body) - {"trashed"} else []
    if "trashed" in body:
        was = file.trashed
        _set_trashed(state, emulator, file, bool(body["trashed"]), now)
        if file.trashed != was:
            resource_state = "trash" if file.trashed else "untrash"
    if file.parents != old_parents:
        changed.append("parents")
        for parent_id in sorted({*old_parents, *file.parents}):
            children_changed(state, emulator, parent_id)
    file.modified = now
    file.version += 1
    state.files[file.id] = file
    file.last_modifier = email
    record_change(state, emulator, file, resource_state, changed, before=before)
    return partial(file_json(state, file, email), fields, DEFAULT_FILE_FIELDS, "File")


def _forget(state: DriveState, emulator: Emulator, files: Iterable[DriveFile]) -> None:
    for doomed in list(files):
        seen = audience(state, doomed)
        state.files.pop(doomed.id, None)
        record_change(state, emulator, doomed, "remove", removed=True, before=seen)
        if doomed.parents:
            children_changed(state, emulator, doomed.parents[0])
        if doomed.content is not None:
            doomed.content.unlink(missing_ok=True)


@router.delete("/drive/v3/files/trash", status_code=204)
async def files_empty_trash(
    request: Request, drive_id: str | None = Query(None, alias="driveId")
) -> Response:
    """drive.files.emptyTrash: every trashed file of the user's My Drive (or a shared drive)"""
    method = "drive.files.emptyTrash"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    if drive_id is not None:
        _drive_root(state, email, drive_id, True)
    trashed = [
        f
        for f in state.files.values()
        if f.explicitly_trashed
        and (f.drive_id == drive_id if drive_id else f.owner == email and f.drive_id is None)
    ]
    for file in trashed:
        _forget(state, emulator, [*_descendants(state, file.id), file])
    return Response(status_code=204)


@router.delete("/drive/v3/files/{file_id}", status_code=204)
async def files_delete(
    request: Request,
    file_id: str,
    supports_all_drives: bool = Query(False, alias="supportsAllDrives"),
) -> Response:
    """drive.files.delete: gone for good, with everything under it"""
    method = "drive.files.delete"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    file = _file(state, emulator, email, file_id, supports_all_drives)
    if file.is_root:
        raise GoogleError(403, "cannotModifyRoot", "The root folder cannot be deleted.")
    require_role(state, email, file, "organizer" if file.drive_id else "owner")
    _forget(state, emulator, [*_descendants(state, file.id), file])
    return Response(status_code=204)


# --- shared drives ----------------------------------------------------------------------------


@router.post("/drive/v3/drives")
async def drives_create(
    request: Request, request_id: str = Query(alias="requestId"), fields: str | None = None
) -> dict[str, Any]:
    """drive.drives.create: the caller becomes its organizer; a reused requestId is a 409"""
    method = "drive.drives.create"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    body = await _json_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise GoogleError(400, "required", "A shared drive needs a name.")
    if any(d.request_id == request_id for d in state.drives.values()):
        raise DriveError(
            409, "duplicate", "A shared drive with this requestId exists.", "requestId"
        )
    drive = SharedDrive(
        id="0A" + _new_id()[1:18],
        name=name,
        created=emulator.clock.now(),
        request_id=request_id,
        members={email},
    )
    state.drives[drive.id] = drive
    return partial(drive_json(drive), fields, DEFAULT_DRIVE_FIELDS, "Drive")


@router.get("/drive/v3/drives")
async def drives_list(
    request: Request,
    page_size: int = Query(10, alias="pageSize", ge=1, le=100),
    page_token: str | None = Query(None, alias="pageToken"),
    fields: str | None = None,
) -> dict[str, Any]:
    """drive.drives.list: the shared drives the caller is a member of"""
    method = "drive.drives.list"
    emulator, email = await _begin(request, method)
    state = drive_state(emulator)
    mine = sorted((d for d in state.drives.values() if email in d.members), key=lambda d: d.id)
    start = _offset(page_token)
    body: dict[str, Any] = {
        "kind": "drive#driveList",
        "drives": [drive_json(d) for d in mine[start : start + page_size]],
    }
    if start + page_size < len(mine):
        body["nextPageToken"] = base64.urlsafe_b64encode(f"o:{start + page_size}".encode()).decode()
    return partial(body, fields, "kind,nextPageToken,drives(kind,id,name)", "DriveList")


@router.get("/drive/v3/drives/{drive_id}")
async def drives_get(request: Request, drive_id: str, fields: str | None = None) -> dict[str, Any]:
    """drive.drives.get"""
    method = "drive.drives.get"
    emulator, email = await _begin(request, method)
    drive = _drive_root(drive_state(emulator), email, drive_id, True)
    return partial(drive_json(drive), fields, DEFAULT_DRIVE_FIELDS, "Drive")


# --- test controls ----------------------------------------------------------------------------


class MemberSpec(BaseModel):
    email: str


class UploadCutSpec(BaseModel):
    after_bytes: int = Field(ge=0, description="Bytes of the session kept before the cut")
    user: str | None = Field(None, description="Only this user's uploads (their email)")


@admin_router.post("/drives/{drive_id}/members", status_code=204)
async def add_member(request: Request, drive_id: str, spec: MemberSpec) -> Response:
    """Make a user a member of a shared drive (as an organizer would share it)."""
    drive = drive_state(emulator_of(request)).drives.get(drive_id)
    if drive is None:
        raise GoogleError(404, "notFound", f"Shared drive not found: {drive_id}")
    drive.members.add(spec.email.lower())
    return Response(status_code=204)


@admin_router.post("/upload-cuts", status_code=204)
async def cut_uploads(request: Request, spec: UploadCutSpec) -> Response:
    """The next resumable chunk crossing ``after_bytes`` keeps only what precedes, then 503s."""
    user = spec.user.lower() if spec.user else None
    drive_state(emulator_of(request)).cuts.append(
        UploadCut(user=user, after_bytes=spec.after_bytes)
    )
    return Response(status_code=204)


@admin_router.get("/files")
async def all_files(request: Request) -> list[dict[str, Any]]:
    """Every file the emulator holds, whoever owns it (for tests counting folders)."""
    state = drive_state(emulator_of(request))
    return [
        {**file_json(state, f, f.owner or ""), "owner": f.owner}
        for f in state.files.values()
        if not f.is_root
    ]
