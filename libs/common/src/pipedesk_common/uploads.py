"""The routes that take uploads (Drive's files, Gmail's messages with attachments), whose bodies
may exceed the 1 MiB every other route keeps: declared once, for the gateway and the service
behind them alike."""

from __future__ import annotations

import re
from typing import Final

from pipedesk_common.observability import BodyLimit

# ``POST /api/drive/records/{record_type}/{record_id}/files``: a file into a record's folder.
DRIVE_UPLOAD: Final = re.compile(r"^/api/drive/records/[a-z]+/[^/]+/files$")
DEFAULT_DRIVE_MAX_UPLOAD_BYTES: Final = 100 * 1024 * 1024
# ``POST /api/gmail/messages`` and ``…/messages/{id}/reply``: a message with its attachments.
GMAIL_SEND: Final = re.compile(r"^/api/gmail/messages(/[^/]+/reply)?$")
# Gmail sends a message of at most 25 MB encoded; a body may carry a little more (the form's
# parts), the message's own size is checked once it is composed.
DEFAULT_GMAIL_MAX_MESSAGE_BYTES: Final = 25 * 1024 * 1024
DEFAULT_GMAIL_MAX_SEND_BYTES: Final = 35 * 1024 * 1024


def drive_upload_limits(max_bytes: int) -> list[BodyLimit]:
    """The body limits of Drive's upload routes, at ``DRIVE_MAX_UPLOAD_BYTES``."""
    return [BodyLimit("POST", DRIVE_UPLOAD, max_bytes)]


def gmail_send_limits(max_bytes: int) -> list[BodyLimit]:
    """The body limit of Gmail's send and reply routes, at ``GMAIL_MAX_SEND_BYTES``."""
    return [BodyLimit("POST", GMAIL_SEND, max_bytes)]
