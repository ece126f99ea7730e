"""What every part of the drive service works with: its runtime (the kit's, with Drive's client
and settings), the Google account an org's folders are reached through, and how Google's answer
about a file becomes its mirror row."""

from __future__ import annotations

from typing import Final

from drive_service.google import DriveGoogle, DriveItem
from drive_service.models import DriveFile, DriveRoot
from drive_service.settings import DriveSettings
from pipedesk_common.google import GoogleUser
from pipedesk_common.mirror.runtime import MirrorRuntime

DriveRuntime = MirrorRuntime[DriveGoogle, DriveSettings]
OWNED: Final = frozenset({"lead", "deal"})  # record types with an owner and members
ANNOUNCED: Final = "pipedesk_announced"  # in a file row's resource: what its last event said


def drive_user(root: DriveRoot) -> GoogleUser:
    """The Google account an org's record folders are reached through."""
    return GoogleUser(org_id=root.org_id, user_id=root.user_id, email=root.user_email)


def apply_item(row: DriveFile, item: DriveItem) -> None:
    """Google's answer about a file into its mirror row."""
    row.name = item.name
    row.mime_type = item.mime_type
    row.size = item.size if item.size is not None else 0
    row.md5 = item.md5_checksum
    row.web_view_link = item.web_view_link
    if item.trashed and not row.trashed:
        row.trashed_at = item.modified_time
    row.trashed = item.trashed
    if not item.trashed:
        row.trashed_at = None
    announced = (row.resource or {}).get(ANNOUNCED)
    row.resource = item.raw if announced is None else {**item.raw, ANNOUNCED: announced}
