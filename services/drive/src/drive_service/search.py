"""Search across the record folders a user may see: by name, or through Drive's full text.

The user's words become one string literal of Drive's query language (``quoted``: ``\\`` and ``'``
escaped), so no text can close the literal and extend the query. Drive answers what the org's
Drive account holds; only files in a record's subfolders are kept, and of those only the ones
whose record the caller may read in CRM.
"""

from __future__ import annotations

from dataclasses import dataclass

from drive_service.google import FOLDER, DriveItem, quoted
from drive_service.models import RecordFolder
from drive_service.repository import DriveRepository
from drive_service.runtime import drive_user
from drive_service.service import DriveService
from pipedesk_common.auth import Principal
from pipedesk_common.errors import NotFound
from pipedesk_common.rbac import Action


@dataclass(frozen=True)
class SearchHit:
    item: DriveItem
    folder: RecordFolder
    subfolder: str
    file_id: str | None  # the mirror's id, when the mirror has it


def drive_query(text: str, *, full_text: bool) -> str:
    field = "fullText" if full_text else "name"
    return f"{field} contains {quoted(text)} and trashed = false and mimeType != {quoted(FOLDER)}"


async def search_files(
    service: DriveService, principal: Principal, text: str, *, full_text: bool, limit: int
) -> list[SearchHit]:
    root = await service.root(principal.org_id)
    items = await service.google.find(
        drive_user(root), drive_query(text, full_text=full_text), root.shared_drive_id
    )
    async with service.uow.read() as session:
        repository = DriveRepository(session)
        places: dict[str, tuple[RecordFolder, str]] = {}
        for folder, _root in await repository.made_folders(principal.org_id):
            for name, google_id in folder.subfolders.items():
                places[google_id] = (folder, name)
        mirrored = {
            item.id: row
            for item in items
            if (row := await repository.file_by_google_id(item.id)) is not None
        }
    readable: dict[tuple[str, str], bool] = {}
    hits: list[SearchHit] = []
    for item in sorted(items, key=lambda found: (found.name.lower(), found.id)):
        place = next((places[p] for p in item.parents if p in places), None)
        if place is None:
            continue
        folder, subfolder = place
        record = (folder.record_type, folder.record_id)
        if record not in readable:
            try:
                await service.authorize(principal, *record, Action.READ)
                readable[record] = True
            except NotFound:
                readable[record] = False
        if not readable[record]:
            continue
        row = mirrored.get(item.id)
        hits.append(SearchHit(item, folder, subfolder, str(row.id) if row else None))
        if len(hits) == limit:
            break
    return hits
