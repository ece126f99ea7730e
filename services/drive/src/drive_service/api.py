"""Drive routes: parse, authorize (through the service, before any Google call), answer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from drive_service.disconnect import set_disconnect_rule
from drive_service.google import GOOGLE_APPS
from drive_service.models import DriveFile, RecordFolder
from drive_service.repair import repair_for
from drive_service.runtime import DriveRuntime
from drive_service.schemas import (
    DisconnectRule,
    FileMove,
    FilePublic,
    FileRename,
    FolderPublic,
    RecordType,
    RepairActionPublic,
    RepairReport,
    RepairRequest,
    RootPublic,
    RootWrite,
    SameContent,
    SearchHitPublic,
    SearchResults,
    ShareCreate,
    ShareDomains,
    SharePublic,
    SubfolderPublic,
)
from drive_service.search import search_files
from drive_service.service import DriveNotConfigured, DriveService, FolderBusy, Upload
from drive_service.sharing import (
    OutsideAllowList,
    WantedShare,
    add_share,
    list_shares,
    remove_share,
    set_share_domains,
)
from pipedesk_common.app import ContextDep, PrincipalDep, provided
from pipedesk_common.auth import ServiceCaller
from pipedesk_common.downloads import download_headers
from pipedesk_common.errors import (
    AppError,
    Conflict,
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    problem_response,
    problem_responses,
)
from pipedesk_common.idempotency import IdempotencyKeyReused
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.mirror.routes import GOOGLE_PROBLEMS, IdempotencyKeyDep, answer_created
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.pagination import Page, PageCursor, PageLimit
from pipedesk_common.rbac import Action

router = APIRouter(prefix="/api/drive", tags=["drive"])
internal = APIRouter(prefix="/internal", tags=["internal"])

MAX_PAGE: Final = 100
RANGE: Final = re.compile(r"^bytes=(\d*)-(\d*)$")
EXPORT_FORMATS: Final = {
    "pdf": "application/pdf",
    "txt": "text/plain",
    "html": "text/html",
    "md": "text/markdown",
    "csv": "text/csv",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
UPLOAD_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes; its Content-Type is the file's type",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class LengthRequired(AppError):
    status, slug, title = 411, "length-required", "Uploads must declare their Content-Length"


class IsGoogleDoc(Conflict):
    slug, title = "google-doc", "A Google Docs file has no content of its own: export it"


RuntimeDep = Annotated[DriveRuntime, Depends(provided(MirrorRuntime))]


async def drive_service(runtime: RuntimeDep, context: ContextDep) -> DriveService:
    return DriveService(runtime, context)


ServiceDep = Annotated[DriveService, Depends(drive_service)]
Subfolder = Annotated[
    str, Query(min_length=1, max_length=200, description="One of DRIVE_SUBFOLDERS")
]


def document_subfolders(document: dict[str, Any], subfolders: list[str]) -> dict[str, Any]:
    """``document`` with the configured subfolders as the ``enum`` of every subfolder a request
    names (the ``subfolder`` query parameter, ``FileMove.subfolder``); in place."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("name") == "subfolder" and parameter.get("in") == "query":
                    parameter["schema"]["enum"] = list(subfolders)
    move = document.get("components", {}).get("schemas", {}).get(FileMove.__name__)
    if move is not None:
        move["properties"]["subfolder"]["enum"] = list(subfolders)
    return document


FileName = Annotated[
    str, Query(min_length=1, max_length=255, pattern=r"^[^/\x00-\x1f]+$", description="Its name")
]


def folder_public(folder: RecordFolder) -> FolderPublic:
    assert folder.google_id is not None
    return FolderPublic(
        id=folder.id,
        record_type=folder.record_type,
        record_id=folder.record_id,
        google_id=folder.google_id,
        name=folder.name,
        web_view_link=folder.web_view_link,
        trashed=folder.trashed,
        subfolders=[
            SubfolderPublic(name=name, google_id=google_id)
            for name, google_id in folder.subfolders.items()
        ],
    )


def declared_size(request: Request, max_bytes: int) -> int:
    """The upload's size from its Content-Length: ``411`` without one, ``413`` above the limit
    (before anything is read or sent to Google)."""
    declared = request.headers.get("content-length")
    if declared is None:
        raise LengthRequired("send the file with a Content-Length (no chunked uploads)")
    if not declared.isdigit():
        raise InvalidInput("Content-Length: not a number")
    size = int(declared)
    if size > max_bytes:
        raise PayloadTooLarge(f"at most {max_bytes} bytes are accepted")
    return size


def media_type(request: Request) -> str:
    value = request.headers.get("content-type") or "application/octet-stream"
    if len(value) > 255 or not re.fullmatch(r"[\w.+-]+/[\w.+-]+(\s*;.*)?", value):
        raise InvalidInput("Content-Type: not a media type")
    return value.split(";")[0].strip().lower()


# --- the org's root ----------------------------------------------------------------------------


@router.put(
    "/root",
    summary="Choose where the org's record folders live (admins): a shared drive, or a folder "
    "in the caller's My Drive; the caller's Google account holds them",
    description=(
        "Names a shared drive (by id) or a folder of the caller's My Drive; the "
        "caller's connected Google account holds the folders from then on. Records' "
        "folders already made stay where they are."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, *GOOGLE_PROBLEMS),
)
async def set_root(data: RootWrite, principal: PrincipalDep, service: ServiceDep) -> RootPublic:
    root = await service.configure_root(principal, data.shared_drive_id, data.name)
    return RootPublic.model_validate(root)


@router.get(
    "/root",
    summary="Where the org's record folders live",
    description=(
        "The org's root (a shared drive or a folder) and the Google account that "
        "holds it; `409` until an admin has chosen one."
    ),
    responses=problem_responses(Unauthorized, DriveNotConfigured),
)
async def get_root(principal: PrincipalDep, service: ServiceDep) -> RootPublic:
    return RootPublic.model_validate(await service.root(principal.org_id))


@router.put(
    "/share-domains",
    summary="The e-mail domains explicit shares may go to (admins)",
    description=(
        "Replaces the org's allow-list: an explicit share to an address outside these domains "
        "is refused with `422`. An empty list allows no explicit share outside CRM access."
    ),
    responses=problem_responses(Unauthorized, Forbidden, InvalidInput, DriveNotConfigured),
)
async def put_share_domains(
    data: ShareDomains, principal: PrincipalDep, service: ServiceDep
) -> RootPublic:
    return RootPublic.model_validate(await set_share_domains(service, principal, data.domains))


@router.put(
    "/on-disconnect",
    summary="What the file index becomes once the root's account disconnects (admins)",
    description=(
        "`keep_metadata` (the default) keeps the files of the org's record folders as last seen "
        "when the Google account holding a My Drive root disconnects Google Drive (or Google "
        "revokes its access); `remove` removes them from PipeDesk and every timeline. A shared "
        "drive's files stay either way."
    ),
    responses=problem_responses(Unauthorized, Forbidden, InvalidInput, DriveNotConfigured),
)
async def put_disconnect_rule(
    data: DisconnectRule, principal: PrincipalDep, service: ServiceDep
) -> RootPublic:
    return RootPublic.model_validate(
        await set_disconnect_rule(service, principal, data.on_disconnect)
    )


@router.get(
    "/search",
    summary="Files of the record folders the caller may see, by name or full text",
    description="`q` is matched by Drive (`name contains` or, with `full_text=true`, `fullText "
    "contains`) as one escaped string, so quotes and backslashes are searched for, never read "
    "as query syntax. Only files in a record's folder whose record the caller may read in CRM "
    "are answered: the first `limit`, by name.",
    responses=problem_responses(Unauthorized, InvalidInput, DriveNotConfigured, *GOOGLE_PROBLEMS),
)
async def search(
    q: Annotated[str, Query(min_length=1, max_length=200, description="The words to find")],
    principal: PrincipalDep,
    service: ServiceDep,
    full_text: bool = False,
    limit: PageLimit = 50,
) -> SearchResults:
    hits = await search_files(service, principal, q, full_text=full_text, limit=limit)
    return SearchResults(
        items=[
            SearchHitPublic(
                google_id=hit.item.id,
                file_id=UUID(hit.file_id) if hit.file_id else None,
                name=hit.item.name,
                mime_type=hit.item.mime_type,
                size=hit.item.size,
                web_view_link=hit.item.web_view_link,
                modified_time=hit.item.modified_time,
                record_type=hit.folder.record_type,
                record_id=hit.folder.record_id,
                subfolder=hit.subfolder,
            )
            for hit in hits
        ]
    )


@router.post(
    "/repair",
    summary="Find (`dry_run`, the default) or fix record folders changed by hand in Drive "
    "(admins): one record's, or the whole org's",
    description="Finds folders deleted or trashed in Drive, moved out of the hierarchy, renamed, "
    "duplicated for one record (contents merged into one), and sharing drifted from CRM "
    "access. Applying carries the actions out (each audited on its record) and answers them.",
    responses=problem_responses(
        Unauthorized, Forbidden, NotFound, InvalidInput, DriveNotConfigured, *GOOGLE_PROBLEMS
    ),
)
async def repair_folders(
    data: RepairRequest, principal: PrincipalDep, service: ServiceDep
) -> RepairReport:
    if (data.record_type is None) != (data.record_id is None):
        raise InvalidInput("record_type and record_id: both, or neither")
    record = (
        (data.record_type, str(data.record_id))
        if data.record_type is not None and data.record_id is not None
        else None
    )
    actions = await repair_for(service, principal, record, dry_run=data.dry_run)
    return RepairReport(
        dry_run=data.dry_run,
        actions=[RepairActionPublic.model_validate(action) for action in actions],
    )


# --- a record's folder and files ---------------------------------------------------------------


@router.get(
    "/records/{record_type}/{record_id}/folder",
    summary="The record's folder, made on first use (`<type folder>/<name> · <short id>/` with "
    "its subfolders)",
    description=(
        "The folder of a record the caller may read, created in Google under the "
        "org's root the first time it is asked for, with the configured subfolders."
    ),
    responses=problem_responses(
        Unauthorized, NotFound, DriveNotConfigured, FolderBusy, *GOOGLE_PROBLEMS
    ),
)
async def record_folder(
    record_type: RecordType, record_id: UUID, principal: PrincipalDep, service: ServiceDep
) -> FolderPublic:
    record = await service.authorize(principal, record_type, str(record_id), Action.READ)
    folder, _root = await service.folder(record)
    return folder_public(folder)


async def _listing(
    record_type: str,
    record_id: UUID,
    principal: PrincipalDep,
    service: DriveService,
    context: ContextDep,
    *,
    trashed: bool,
    limit: int,
    cursor: str | None,
) -> Page[FilePublic]:
    record = await service.authorize(principal, record_type, str(record_id), Action.READ)
    folder, _root = await service.folder(record)
    scope = f"drive-files:{folder.id}:{trashed}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    rows = await service.files(folder, trashed=trashed, after=after, limit=limit + 1)
    page = context.cursors.keyset_page(rows, limit, moment=lambda row: row.created_at, scope=scope)
    return Page(
        items=[FilePublic.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/records/{record_type}/{record_id}/files",
    summary="The files in the record's folder (from the local mirror), oldest first",
    description=(
        "Read from the mirror (kept in step with Google by push notifications and "
        "sync), a page at a time: pass `next_cursor` back as `cursor` until it is "
        "null."
    ),
    responses=problem_responses(
        Unauthorized, NotFound, InvalidCursor, DriveNotConfigured, *GOOGLE_PROBLEMS
    ),
)
async def list_files(
    record_type: RecordType,
    record_id: UUID,
    principal: PrincipalDep,
    service: ServiceDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[FilePublic]:
    return await _listing(
        record_type,
        record_id,
        principal,
        service,
        context,
        trashed=False,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/records/{record_type}/{record_id}/trash",
    summary="The record's trashed files (restorable), oldest first",
    description=(
        "Files moved to the trash, which `POST /api/drive/files/{file_id}/restore` "
        "brings back; a page at a time."
    ),
    responses=problem_responses(
        Unauthorized, NotFound, InvalidCursor, DriveNotConfigured, *GOOGLE_PROBLEMS
    ),
)
async def list_trash(
    record_type: RecordType,
    record_id: UUID,
    principal: PrincipalDep,
    service: ServiceDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[FilePublic]:
    return await _listing(
        record_type,
        record_id,
        principal,
        service,
        context,
        trashed=True,
        limit=limit,
        cursor=cursor,
    )


@router.post(
    "/records/{record_type}/{record_id}/files",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a file into the record's folder (streamed; the body is the file)",
    description="Send the file's bytes as the body with its `Content-Type` and `Content-Length` "
    "(required: `411` without). Larger than `DRIVE_MAX_UPLOAD_BYTES`: `413`, before anything "
    "reaches Google. Files up to `DRIVE_RESUMABLE_THRESHOLD_BYTES` go to Google in one request, "
    "larger ones in resumable chunks, never held whole in memory. With `Idempotency-Key`, a "
    "retried upload answers the file the first one stored (`200`), never a second file; the "
    "same key with another name or subfolder answers `422`.",
    openapi_extra=UPLOAD_BODY,
    responses=problem_responses(
        Unauthorized,
        Forbidden,
        NotFound,
        InvalidInput,
        LengthRequired,
        PayloadTooLarge,
        DriveNotConfigured,
        IdempotencyKeyReused,
        *GOOGLE_PROBLEMS,
    ),
)
async def upload_file(
    record_type: RecordType,
    record_id: UUID,
    name: FileName,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    response: Response,
    idempotency_key: IdempotencyKeyDep,
    subfolder: Subfolder = "Documents",
) -> FilePublic:
    size = declared_size(request, service.settings.max_upload_bytes)
    mime = media_type(request)
    record = await service.authorize(principal, record_type, str(record_id), Action.UPDATE)
    row, created = await service.upload(
        record,
        subfolder,
        Upload(name, mime, size, request.stream(), uploader=principal.sub),
        caller_key=f"user:{principal.sub}:{idempotency_key}" if idempotency_key else None,
    )
    answer_created(response, f"/api/drive/files/{row.id}", created)
    return FilePublic.model_validate(row)


# --- a record's shares -------------------------------------------------------------------------


def share_public(share: WantedShare) -> SharePublic:
    kind, who = share.grantee
    return SharePublic(
        type="domain" if kind == "domain" else "user",
        email=who if kind != "domain" else None,
        domain=who if kind == "domain" else None,
        role=share.role,
        derived=share.derived,
        explicit=share.explicit,
        notify=share.notify,
    )


@router.get(
    "/records/{record_type}/{record_id}/shares",
    summary="Who the record's folder is shared with in Google: derived from CRM access "
    "(owner and collaborators write, followers read; contacts and companies org-wide) or "
    "explicit",
    description=(
        "Read from Google for a record the caller may read: each share says whether CRM access "
        "derives it, whether it was shared explicitly, or both, a page at a time (pass "
        "`next_cursor` back as `cursor` until it is null)."
    ),
    responses=problem_responses(
        Unauthorized, NotFound, InvalidCursor, DriveNotConfigured, *GOOGLE_PROBLEMS
    ),
)
async def get_shares(
    record_type: RecordType,
    record_id: UUID,
    principal: PrincipalDep,
    service: ServiceDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[SharePublic]:
    _folder, shares = await list_shares(service, principal, record_type, str(record_id))
    return context.cursors.listed_page(
        [share_public(share) for share in shares],
        limit,
        cursor,
        key=lambda share: [share.type, share.email or share.domain or ""],
        scope=f"shares:{principal.org_id}:{record_type}:{record_id}",
    )


@router.post(
    "/records/{record_type}/{record_id}/shares",
    status_code=status.HTTP_201_CREATED,
    summary="Share the record's folder with someone outside CRM access (the record's writers "
    "and admins), to an address of the org's allowed domains",
    description=(
        "Grants `reader`, `commenter` or `writer` to one address of the org's allowed domains "
        "(`422` otherwise); Google e-mails them only when `notify` is true. Sharing again "
        "with the same address changes its role."
    ),
    responses=problem_responses(
        Unauthorized,
        Forbidden,
        NotFound,
        InvalidInput,
        OutsideAllowList,
        DriveNotConfigured,
        *GOOGLE_PROBLEMS,
    ),
)
async def post_share(
    record_type: RecordType,
    record_id: UUID,
    data: ShareCreate,
    principal: PrincipalDep,
    service: ServiceDep,
) -> SharePublic:
    share = await add_share(
        service,
        principal,
        record_type,
        str(record_id),
        email=data.email,
        role=data.role,
        notify=data.notify,
    )
    return share_public(share)


@router.delete(
    "/records/{record_type}/{record_id}/shares/{email}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Take back an explicit share (the record's writers and admins)",
    description=(
        "Removes the explicit share of that address; a share CRM access derives stays as "
        "long as the access does."
    ),
    responses=problem_responses(
        Unauthorized, Forbidden, NotFound, DriveNotConfigured, *GOOGLE_PROBLEMS
    ),
)
async def delete_share(
    record_type: RecordType,
    record_id: UUID,
    email: Annotated[str, Path(min_length=3, max_length=320)],
    principal: PrincipalDep,
    service: ServiceDep,
) -> None:
    await remove_share(service, principal, record_type, str(record_id), email)


# --- one file ----------------------------------------------------------------------------------


@router.get(
    "/files/{file_id}",
    summary="A file's details",
    description=(
        "A file of a record's folder the caller may read: its name, type, size, "
        "folder and Google link."
    ),
    responses=problem_responses(Unauthorized, NotFound),
)
async def get_file(file_id: UUID, principal: PrincipalDep, service: ServiceDep) -> FilePublic:
    return FilePublic.model_validate(await service.file(principal, file_id, Action.READ))


def _byte_range(header: str | None, size: int) -> tuple[int, int, bool] | None:
    """(first, last, partial) of a single ``Range``; None when it cannot be satisfied."""
    if header is None:
        return 0, size - 1, False
    match = RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    start, end = match.groups()
    if start == "":
        first, last = max(0, size - int(end)), size - 1
    else:
        first = int(start)
        last = min(int(end), size - 1) if end else size - 1
    if first >= size or first > last:
        return None
    return first, last, True


async def _prefetched(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream with its first piece already read: Google's refusal becomes a problem
    answered before the status line, not a cut-off download."""
    iterator = body.__aiter__()
    first = await anext(iterator, b"")

    async def chain() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for piece in iterator:
            yield piece

    return chain()


@router.get(
    "/files/{file_id}/content",
    summary="Download a file (streamed; one `Range` honoured), always as an attachment",
    description=(
        "Streams the file's bytes from Google as they come, with "
        "`Content-Disposition: attachment`; a single `Range` answers `206` with that "
        "part. Google Docs files are exported instead (`409` here)."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's bytes",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        206: {
            "description": "The requested range",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **problem_responses(Unauthorized, NotFound, IsGoogleDoc, *GOOGLE_PROBLEMS),
    },
)
async def download_file(
    file_id: UUID,
    principal: PrincipalDep,
    service: ServiceDep,
    byte_range: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    found = await service.file(principal, file_id, Action.READ)
    if found.mime_type.startswith(GOOGLE_APPS):
        raise IsGoogleDoc(
            f"export it (GET /api/drive/files/{found.id}/export?format=pdf) or open "
            f"{found.web_view_link}"
        )
    size = found.size or 0
    headers = {**download_headers(found.name), "Accept-Ranges": "bytes"}
    if size == 0:
        return Response(b"", media_type=found.mime_type, headers=headers)
    chosen = _byte_range(byte_range, size)
    if chosen is None:
        return problem_response(
            416,
            "range-not-satisfiable",
            "Range not satisfiable",
            f"the file has {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    first, last, partial = chosen
    headers["Content-Length"] = str(last - first + 1)
    if partial:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    body = await _prefetched(await service.content(found, first, last))
    return StreamingResponse(
        body,
        status_code=206 if partial else 200,
        media_type=found.mime_type,
        headers=headers,
    )


@router.get(
    "/files/{file_id}/export",
    summary="A Google Docs, Sheets or Slides file exported (`format`: pdf, txt, html, md, "
    "csv, docx, xlsx, pptx), as an attachment",
    description=(
        "Google converts the file to `format` (default pdf); the result is streamed "
        "as an attachment."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The exported file's bytes",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **problem_responses(Unauthorized, NotFound, InvalidInput, *GOOGLE_PROBLEMS),
    },
)
async def export_file(
    file_id: UUID,
    principal: PrincipalDep,
    service: ServiceDep,
    export_format: Annotated[str, Query(alias="format", pattern=r"^[a-z]{2,4}$")] = "pdf",
) -> Response:
    found = await service.file(principal, file_id, Action.READ)
    mime = EXPORT_FORMATS.get(export_format)
    if mime is None:
        raise InvalidInput(f"format: one of {', '.join(EXPORT_FORMATS)}")
    if not found.mime_type.startswith(GOOGLE_APPS):
        raise InvalidInput("only Google Docs, Sheets and Slides export; download this file")
    data = await service.export(found, mime)
    return Response(
        data, media_type=mime, headers=download_headers(f"{found.name}.{export_format}")
    )


@router.patch(
    "/files/{file_id}",
    summary="Rename a file",
    description=(
        "Renames the file in Google and in the mirror; needs `update` on its record. Audited."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput, *GOOGLE_PROBLEMS),
)
async def rename_file(
    file_id: UUID, data: FileRename, principal: PrincipalDep, service: ServiceDep
) -> FilePublic:
    return FilePublic.model_validate(await service.rename(principal, file_id, data.name))


@router.post(
    "/files/{file_id}/move",
    summary="Move a file into another record's folder (`update` needed on both records)",
    description=(
        "Moves the file in Google into the target record's folder (the caller needs "
        "`update` on both records); its sharing follows the new record's access. "
        "Audited."
    ),
    responses=problem_responses(
        Unauthorized, Forbidden, NotFound, InvalidInput, DriveNotConfigured, *GOOGLE_PROBLEMS
    ),
)
async def move_file(
    file_id: UUID, data: FileMove, principal: PrincipalDep, service: ServiceDep
) -> FilePublic:
    moved = await service.move(
        principal, file_id, data.record_type, str(data.record_id), data.subfolder
    )
    return FilePublic.model_validate(moved)


@router.post(
    "/files/{file_id}/trash",
    summary="Move a file to the trash (restorable)",
    description=(
        "Trashes the file in Google; it stays restorable until Google empties the trash. Audited."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, *GOOGLE_PROBLEMS),
)
async def trash_file(file_id: UUID, principal: PrincipalDep, service: ServiceDep) -> FilePublic:
    return FilePublic.model_validate(await service.set_trashed(principal, file_id, True))


@router.post(
    "/files/{file_id}/restore",
    summary="Restore a file from the trash",
    description=(
        "Takes the file out of the trash in Google, back into its record's folder. Audited."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, *GOOGLE_PROBLEMS),
)
async def restore_file(file_id: UUID, principal: PrincipalDep, service: ServiceDep) -> FilePublic:
    return FilePublic.model_validate(await service.set_trashed(principal, file_id, False))


@router.delete(
    "/files/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a file for good (admins)",
    description="Deletes the file in Google, past the trash; it cannot be restored. Audited.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, *GOOGLE_PROBLEMS),
)
async def delete_file(file_id: UUID, principal: PrincipalDep, service: ServiceDep) -> None:
    await service.delete(principal, file_id)


# --- for the automation service ----------------------------------------------------------------

INTERNAL_UPLOAD: Final = re.compile(r"^/internal/records/[a-z]+/[^/]+/files$")


@internal.post(
    "/records/{record_type}/{record_id}/files",
    status_code=status.HTTP_201_CREATED,
    summary="Save a stream into a record's subfolder, once per `key` (callers: automation)",
    description="The body is the file, as for uploads. The same `key` again answers the file "
    "the first request saved (`200`), never a second file. `from_message` (the email's "
    "`Message-ID`), `from_subject` and `from_sender` say what it was saved from: the file's "
    "timeline item says so; `rule_id` names the automation rule that saved it (the uploader "
    "is then `svc:automation:rule:<id>`, in the audit too).",
    openapi_extra=UPLOAD_BODY,
    responses={
        **internal_problems(),
        **problem_responses(
            NotFound, InvalidInput, LengthRequired, PayloadTooLarge, DriveNotConfigured
        ),
    },
)
async def save_file(
    record_type: RecordType,
    record_id: UUID,
    name: FileName,
    org_id: Annotated[str, Query(min_length=1, max_length=255, description="The record's org")],
    key: Annotated[str, Query(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")],
    request: Request,
    caller: Annotated[ServiceCaller, Depends(callers("automation"))],
    service: ServiceDep,
    response: Response,
    subfolder: Subfolder = "Email attachments",
    from_message: Annotated[str | None, Query(min_length=1, max_length=300)] = None,
    from_subject: Annotated[str | None, Query(max_length=500)] = None,
    from_sender: Annotated[str | None, Query(max_length=320)] = None,
    rule_id: UUID | None = None,
) -> FilePublic:
    size = declared_size(request, service.settings.max_upload_bytes)
    mime = media_type(request)
    record = await service.live_record(org_id, record_type, str(record_id))
    uploader = f"svc:{caller.name}" + (f":rule:{rule_id}" if rule_id else "")
    origin: dict[str, Any] | None = None
    if from_message is not None:
        origin = {
            "message_id": from_message,
            "subject": from_subject,
            "sender": from_sender,
            "rule_id": str(rule_id) if rule_id else None,
        }
    row, created = await service.upload(
        record,
        subfolder,
        Upload(name, mime, size, request.stream(), uploader=uploader, origin=origin),
        caller_key=f"svc:{caller.name}:{key}",
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return FilePublic.model_validate(row)


@internal.get(
    "/records/{record_type}/{record_id}/files",
    summary="A record subfolder's files with a given content hash (callers: automation)",
    description="The files of the record's subfolder (not in the trash) whose `md5` (Google's "
    "`md5Checksum`) is `md5`: what the automation service checks before saving a file the "
    "folder may already hold. A record without a folder yet has none.",
    responses={**internal_problems(), **problem_responses(NotFound, InvalidInput)},
)
async def files_with_content(
    record_type: RecordType,
    record_id: UUID,
    org_id: Annotated[str, Query(min_length=1, max_length=255, description="The record's org")],
    md5: Annotated[str, Query(pattern=r"^[0-9a-f]{32}$", description="Lower-case hex MD5")],
    caller: Annotated[ServiceCaller, Depends(callers("automation"))],
    service: ServiceDep,
    subfolder: Subfolder = "Email attachments",
) -> SameContent:
    record = await service.live_record(org_id, record_type, str(record_id))
    return SameContent(
        items=[
            FilePublic.model_validate(row)
            for row in await service.files_with_md5(record, subfolder, md5)
        ]
    )


# --- for the gmail service ---------------------------------------------------------------------

# The end user a service acts for: their own PipeDesk token, checked here as the gateway would.
ACTING_USER: Final = "X-Acting-User-Token"


@internal.get(
    "/files/{file_id}/content",
    summary="A file's bytes for a message its reader sends (callers: gmail)",
    description=(
        f"The acting user's own PipeDesk token in `{ACTING_USER}` (checked as any user token: "
        "`401` otherwise): the file must be of a record they may read (`404` otherwise, also "
        "for another org's file). Streamed from Google; `X-File-Name` (percent-encoded) and "
        "`Content-Type` name it. Google Docs files have no bytes of their own (`409`)."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's bytes",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **internal_problems(),
        **problem_responses(NotFound, IsGoogleDoc, *GOOGLE_PROBLEMS),
    },
)
async def file_for_mail(
    file_id: UUID,
    caller: Annotated[ServiceCaller, Depends(callers("gmail"))],
    context: ContextDep,
    service: ServiceDep,
    acting_user: Annotated[str | None, Header(alias=ACTING_USER)] = None,
) -> Response:
    if not acting_user:
        raise Unauthorized(f"{ACTING_USER} is required: the user the file is read for")
    principal = await context.user_tokens.principal(acting_user)
    found = await service.file(principal, file_id, Action.READ)
    if found.mime_type.startswith(GOOGLE_APPS):
        raise IsGoogleDoc("a Google Docs file has no bytes to attach; export it first")
    size = found.size or 0
    headers = {
        "Content-Length": str(size),
        "X-File-Name": quote(found.name, safe=""),
    }
    if size == 0:
        return Response(b"", media_type=found.mime_type, headers=headers)
    body = await _prefetched(await service.content(found, 0, size - 1))
    return StreamingResponse(body, media_type=found.mime_type, headers=headers)


__all__ = ["DriveFile", "internal", "router"]
