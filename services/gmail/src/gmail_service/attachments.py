"""Downloading a message's attachment, for a viewer who sees the message in ``full``.

Gmail answers ``messages.attachments.get`` whole: the file base64url-encoded in a JSON
document. The answer is taken as its bytes (the client's JSON parsing, which would hold the
text twice more, is skipped), the ``data`` field found in them, and decoded a piece at a time
as the file is streamed on: the service holds the encoded answer and one decoded piece, never a
second full copy. A file the mirror knows to be over ``GMAIL_MAX_ATTACHMENT_BYTES`` is refused
(``413``) before Google is asked; one whose answer turns out larger, before any byte is sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final

from googleapiclient.http import HttpRequest

from gmail_service.read_repository import MailReadRepository
from gmail_service.reading import Level, MailReader, ShownMessage
from gmail_service.sync import GmailRuntime
from pipedesk_common.auth import Principal
from pipedesk_common.errors import AppError, NotFound
from pipedesk_common.google.calls import GoogleCallError
from pipedesk_common.google.credentials import GoogleUser

GET_UNITS: Final = 5  # messages.get and messages.attachments.get, in Gmail's quota units
# Decoded a piece at a time: 4 encoded characters are 3 bytes.
PIECE_CHARACTERS: Final = 4 * 64 * 1024
DATA_FIELD: Final = re.compile(rb'"data"\s*:\s*"')
URL_SAFE: Final = bytes.maketrans(b"-_", b"+/")


class AttachmentNotFound(NotFound):
    slug, title = "attachment-not-found", "No such attachment"


class AttachmentTooLarge(AppError):
    status, slug, title = 413, "attachment-too-large", "The attachment is too large to download"


@dataclass(frozen=True)
class Download:
    filename: str
    mime_type: str
    size: int
    pieces: AsyncIterator[bytes]


def _part(payload: dict[str, Any], part_id: str) -> dict[str, Any] | None:
    if payload.get("partId", "") == part_id:
        return payload
    for child in payload.get("parts") or []:
        found = _part(child, part_id)
        if found is not None:
            return found
    return None


def _raw_answer(request: HttpRequest) -> HttpRequest:
    """The request, answering its body's bytes as they came (not parsed as JSON)."""
    request.postproc = lambda _response, content: content
    return request


def encoded_data(answer: bytes) -> memoryview:
    """The ``data`` field of an ``attachments.get`` answer, as a view of the answer's bytes
    (base64url holds no character JSON escapes)."""
    found = DATA_FIELD.search(answer)
    end = answer.find(b'"', found.end()) if found else -1
    if found is None or end < 0:
        raise GoogleCallError("Gmail's attachment answer has no data")
    return memoryview(answer)[found.end() : end]


def decoded_size(encoded: memoryview) -> int:
    length = len(encoded)
    padding = 0
    while padding < 2 and length - padding > 0 and encoded[length - padding - 1] == ord("="):
        padding += 1
    unpadded = length - padding
    return unpadded * 3 // 4


def decoded_pieces(encoded: memoryview) -> Iterator[bytes]:
    """The bytes of base64url text, a piece at a time."""
    for start in range(0, len(encoded), PIECE_CHARACTERS):
        chunk = bytes(encoded[start : start + PIECE_CHARACTERS])
        if len(chunk) % 4:
            chunk = chunk.rstrip(b"=")
            chunk += b"=" * (-len(chunk) % 4)
        try:
            # Strict: a character outside the alphabet is an error, never skipped.
            yield base64.b64decode(chunk.translate(URL_SAFE), validate=True)
        except (binascii.Error, ValueError) as error:
            raise GoogleCallError("Gmail's attachment answer is not base64url") from error


async def _streamed(encoded: memoryview) -> AsyncIterator[bytes]:
    try:
        for piece in decoded_pieces(encoded):
            yield piece
    finally:
        encoded.release()


class AttachmentReader:
    def __init__(self, runtime: GmailRuntime, reader: MailReader) -> None:
        self.runtime = runtime
        self.reader = reader

    def _limit(self) -> int:
        limit: int = self.runtime.settings.max_attachment_bytes
        return limit

    async def _spend(self, user: GoogleUser) -> None:
        await self.runtime.google.budget(user).spend(GET_UNITS)

    async def download(self, principal: Principal, message_id: Any, attachment_id: str) -> Download:
        """The attachment (``attachment_id``: its part's id, as the message lists it), if the
        viewer sees the message in ``full``; else ``404``."""
        shown: ShownMessage = await self.reader.message(principal, message_id)
        if shown.level is not Level.FULL:
            raise AttachmentNotFound("no such attachment")
        copy = shown.copy
        listed = next((a for a in copy.attachments if a.get("part_id") == attachment_id), None)
        if listed is None:
            raise AttachmentNotFound("no such attachment")
        limit = self._limit()
        if int(listed.get("size") or 0) > limit:
            raise AttachmentTooLarge(f"attachments over {limit} bytes are not downloaded")
        async with self.runtime.uow.read() as session:
            mailbox = await MailReadRepository(session).mailbox_of(copy.mailbox_id)
        if mailbox is None or not mailbox.connected:
            # Without the owner's connection there is no way to Gmail's copy.
            raise AttachmentNotFound("the attachment's mailbox is no longer connected")
        owner = mailbox.owner
        api = self.runtime.google.api
        await self._spend(owner)
        structure = await api.call(
            owner,
            "users.messages.get",
            lambda client: (
                client.users().messages().get(userId="me", id=copy.google_id, format="full")
            ),
        )
        part = _part(structure.get("payload") or {}, attachment_id)
        google_attachment = ((part or {}).get("body") or {}).get("attachmentId")
        if not google_attachment:
            raise AttachmentNotFound("no such attachment")
        size = int(((part or {}).get("body") or {}).get("size") or 0)
        if size > limit:
            raise AttachmentTooLarge(f"attachments over {limit} bytes are not downloaded")
        await self._spend(owner)
        answer: bytes = await api.call(
            owner,
            "users.messages.attachments.get",
            lambda client: _raw_answer(
                client.users()
                .messages()
                .attachments()
                .get(userId="me", messageId=copy.google_id, id=google_attachment)
            ),
        )
        encoded = encoded_data(answer)
        del answer
        length = decoded_size(encoded)
        if length > limit:
            encoded.release()
            raise AttachmentTooLarge(f"attachments over {limit} bytes are not downloaded")
        return Download(
            filename=str(listed.get("filename") or "attachment"),
            mime_type=str(listed.get("mime_type") or "application/octet-stream"),
            size=length,
            pieces=_streamed(encoded),
        )
