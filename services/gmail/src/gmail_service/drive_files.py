"""Attachments taken from Drive: a record's files, read through the drive service's internal
route for the user who sends them (their own token goes along, so Drive decides whether they
may read the file's record), each held whole only as long as the message is composed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from urllib.parse import unquote
from uuid import UUID

import httpx

from gmail_service.compose import Attachment
from gmail_service.sending import too_large
from pipedesk_common.app import ServiceContext
from pipedesk_common.errors import FieldError, InvalidInput, NotFound, ServiceUnavailable

ACTING_USER: Final = "X-Acting-User-Token"


def _field(index: int) -> str:
    return f"body.drive_file_ids.{index}"


async def drive_attachments(
    context: ServiceContext, user_token: str, file_ids: Sequence[UUID], budget: int
) -> list[Attachment]:
    """The files' bytes as attachments; ``413`` as soon as they pass ``budget`` bytes, ``404``
    naming the file the user may not read (or that is not there)."""
    base = context.settings.url_of("drive")
    headers = {
        "Authorization": f"Bearer {context.issuer().token_for('drive')}",
        ACTING_USER: user_token,
    }
    found: list[Attachment] = []
    total = 0
    for index, file_id in enumerate(file_ids):
        url = f"{base}/internal/files/{file_id}/content"
        try:
            async with context.http.stream("GET", url, headers=headers, timeout=60) as answer:
                if answer.status_code == 404:
                    raise NotFound(
                        f"drive_file_ids.{index}: no such file",
                        errors=[
                            FieldError(
                                field=_field(index), message="no such file", code="not_found"
                            )
                        ],
                    )
                if answer.status_code == 409:
                    raise InvalidInput(
                        f"drive_file_ids.{index}: a Google Docs file has no bytes to attach",
                        errors=[
                            FieldError(
                                field=_field(index),
                                message="a Google Docs file: export it to attach it",
                                code="google_doc",
                            )
                        ],
                    )
                if answer.status_code != 200:
                    raise ServiceUnavailable(
                        f"the drive service answered {answer.status_code} for a file",
                        headers={"Retry-After": "5"},
                    )
                pieces: list[bytes] = []
                async for piece in answer.aiter_bytes():
                    total += len(piece)
                    if total > budget:
                        raise too_large(total, budget)
                    pieces.append(piece)
                name = unquote(answer.headers.get("x-file-name", "")) or f"file-{index + 1}"
                mime = answer.headers.get("content-type", "application/octet-stream")
                found.append(Attachment(name, mime.split(";")[0].strip(), b"".join(pieces)))
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "the drive service cannot be reached for a file", headers={"Retry-After": "5"}
            ) from exc
    return found
