"""Opaque, tamper-evident cursors for keyset pagination.

A cursor carries the sort key of the last row served and is bound, by an HMAC, to the query it
came from: a cursor edited by hand, or replayed against another filter or sort, is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Protocol, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, Field

from pipedesk_common.errors import FieldError, InvalidCursor

T = TypeVar("T")


class Keyed(Protocol):
    @property
    def id(self) -> UUID: ...


K = TypeVar("K", bound=Keyed)

_MAC_BYTES = 16
MAX_CURSOR_CHARS = 1024
MAX_PAGE = 100
MAX_WIDE_PAGE = 200

# A listing route's paging parameters, the same on every route that pages.
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
WidePageLimit = Annotated[int, Query(ge=1, le=MAX_WIDE_PAGE)]  # listings of small rows
PageCursor = Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page"
    )


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the cursor secret needs at least 32 bytes")
        self._secret = secret

    def _mac(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode() + b"\x00" + payload
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, position: Sequence[Any], *, scope: str) -> str:
        """Encode the sort key of the last row served; ``scope`` names the query it belongs to."""
        payload = json.dumps(list(position), separators=(",", ":"), default=str).encode()
        return _b64encode(payload) + "." + _b64encode(self._mac(scope, payload))

    def decode(self, cursor: str, *, scope: str) -> list[Any]:
        try:
            if len(cursor) > MAX_CURSOR_CHARS:
                raise ValueError("too long")
            encoded_payload, encoded_mac = cursor.split(".")
            payload = _b64decode(encoded_payload)
            mac = _b64decode(encoded_mac)
        except (ValueError, binascii.Error):
            raise self.invalid() from None
        if not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise self.invalid()
        position = json.loads(payload)
        if not isinstance(position, list):
            raise self.invalid()
        return position

    def decode_key(self, cursor: str, *, scope: str) -> str:
        """A position that is one string key (a user id), as ``encode([key])`` wrote it."""
        position = self.decode(cursor, scope=scope)
        if len(position) != 1 or not isinstance(position[0], str):
            raise self.invalid()
        return position[0]

    def encode_keyset(self, moment: datetime, row_id: UUID, *, scope: str) -> str:
        """The usual keyset position: a timestamp and a row id."""
        return self.encode([moment.isoformat(), str(row_id)], scope=scope)

    def decode_keyset(self, cursor: str, *, scope: str) -> tuple[datetime, UUID]:
        try:
            moment, row_id = self.decode(cursor, scope=scope)
            return datetime.fromisoformat(moment), UUID(row_id)
        except (TypeError, ValueError):
            raise self.invalid() from None

    def keyset_page(
        self, rows: Sequence[K], limit: int, *, moment: Callable[[K], datetime], scope: str
    ) -> Page[K]:
        """The first ``limit`` of ``rows`` (read with one more, to know whether more follow),
        and a cursor after the last of them when more follow."""
        items = list(rows[:limit])
        more = len(rows) > limit
        last = items[-1] if more else None
        next_cursor = self.encode_keyset(moment(last), last.id, scope=scope) if last else None
        return Page(items=items, next_cursor=next_cursor)

    def listed_page(
        self,
        items: Iterable[T],
        limit: int,
        cursor: str | None,
        *,
        key: Callable[[T], Sequence[str]],
        scope: str,
    ) -> Page[T]:
        """A page of a short list read whole (a record's members, a user's Google calendars),
        in the order of ``key`` (unique per item): the first ``limit`` after ``cursor``'s key,
        and a cursor after the last of them when more follow."""
        ordered = sorted(items, key=lambda item: list(key(item)))
        if cursor:
            after = self.decode(cursor, scope=scope)
            if not all(isinstance(part, str) for part in after):
                raise self.invalid()
            ordered = [item for item in ordered if list(key(item)) > after]
        chosen = ordered[:limit]
        more = len(ordered) > limit
        next_cursor = self.encode(list(key(chosen[-1])), scope=scope) if more else None
        return Page[T](items=chosen, next_cursor=next_cursor)

    @staticmethod
    def invalid() -> InvalidCursor:
        """The error for a cursor that does not belong to the query."""
        return InvalidCursor(
            "cursor was not issued for this query or has been altered",
            errors=[
                FieldError(field="query.cursor", message="invalid cursor", code="invalid_cursor")
            ],
        )
