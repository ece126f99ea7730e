"""The routes that take uploads, whose bodies may exceed the 1 MiB every other route keeps:
declared once, for the gateway and the service behind them alike."""

from __future__ import annotations

import re
from typing import Final

from pipedesk_common.observability import BodyLimit

# ``POST /api/drive/records/{record_type}/{record_id}/files``: a file into a record's folder.
DRIVE_UPLOAD: Final = re.compile(r"^/api/drive/records/[a-z]+/[^/]+/files$")
DEFAULT_DRIVE_MAX_UPLOAD_BYTES: Final = 100 * 1024 * 1024


def drive_upload_limits(max_bytes: int) -> list[BodyLimit]:
    """The body limits of Drive's upload routes, at ``DRIVE_MAX_UPLOAD_BYTES``."""
    return [BodyLimit("POST", DRIVE_UPLOAD, max_bytes)]
