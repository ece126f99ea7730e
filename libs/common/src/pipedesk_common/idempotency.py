"""``Idempotency-Key`` for POSTs that create things in Google, across processes and restarts.

Two mechanisms, used together:

- **The remote id is chosen by us**, derived from the key (``remote_id``): a retried create
  asks Google for the same id, and Google's ``409`` for a taken id means "already done", even when
  the first attempt died between Google's answer and our commit.
- **The answer is remembered** (``remember``) in the same transaction as the change, so a retry
  gets the same answer (``replay``) without calling Google at all; a key reused with a different
  payload is refused (``422 idempotency-key-reused``). Remembered answers expire after
  ``retention`` (``prune``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    delete,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.clock import Clock
from pipedesk_common.errors import AppError, FieldError, InvalidInput

HEADER: Final = "Idempotency-Key"
MAX_KEY_LENGTH: Final = 255
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
BASE32HEX: Final = "0123456789abcdefghijklmnopqrstuv"


class IdempotencyKeyReused(AppError):
    status, slug, title = (
        422,
        "idempotency-key-reused",
        "This Idempotency-Key was used for another request",
    )


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("scope", String(300), nullable=False),
        Column("key", String(MAX_KEY_LENGTH), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("status", SmallInteger, nullable=False),
        Column("body", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("scope", "key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )


def parse_key(value: str | None) -> str | None:
    """The header's value, checked: 1 to 255 visible ASCII characters."""
    if value is None:
        return None
    if not _KEY.match(value):
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            errors=[
                FieldError(
                    field="header.idempotency-key",
                    message="1 to 255 visible ASCII characters",
                    code="invalid",
                )
            ],
        )
    return value


def fingerprint(payload: Any) -> str:
    """A digest of a request's meaning (its validated payload), to recognise a reused key."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def remote_id(scope: str, key: str, *, length: int = 32, alphabet: str = BASE32HEX) -> str:
    """A stable id for the remote object a keyed create makes (Calendar wants ``[a-v0-9]``)."""
    digest = int.from_bytes(hashlib.sha256(f"{scope}\x00{key}".encode()).digest(), "big")
    characters = []
    for _ in range(length):
        digest, index = divmod(digest, len(alphabet))
        characters.append(alphabet[index])
    return "".join(characters)


@dataclass(frozen=True)
class RememberedAnswer:
    status: int
    body: dict[str, Any]


class IdempotencyKeys:
    def __init__(
        self, table: Table, clock: Clock, *, retention: timedelta = timedelta(hours=24)
    ) -> None:
        self.table = table
        self.clock = clock
        self.retention = retention

    async def replay(
        self, session: AsyncSession, scope: str, key: str, digest: str
    ) -> RememberedAnswer | None:
        """The answer given to this key before, if any; refuses a key reused for other input."""
        table = self.table
        row = (
            await session.execute(
                select(table.c.fingerprint, table.c.status, table.c.body, table.c.created_at).where(
                    table.c.scope == scope, table.c.key == key
                )
            )
        ).one_or_none()
        if row is None or row.created_at < self.clock.now() - self.retention:
            return None
        if row.fingerprint != digest:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was sent before with a different payload",
                errors=[
                    FieldError(
                        field="header.idempotency-key",
                        message="already used for a different payload",
                        code="reused",
                    )
                ],
            )
        return RememberedAnswer(status=row.status, body=row.body)

    async def remember(
        self,
        session: AsyncSession,
        scope: str,
        key: str,
        digest: str,
        *,
        status: int,
        body: dict[str, Any],
    ) -> None:
        """Keep the answer (in the caller's transaction); a concurrent twin's answer wins."""
        statement = insert(self.table).values(
            scope=scope,
            key=key,
            fingerprint=digest,
            status=status,
            body=body,
            created_at=self.clock.now(),
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["scope", "key"],
                set_={
                    name: statement.excluded[name]
                    for name in ("fingerprint", "status", "body", "created_at")
                },
                where=self.table.c.created_at < self.clock.now() - self.retention,
            )
        )

    async def prune(self, session: AsyncSession) -> int:
        cutoff = self.clock.now() - self.retention
        result = await session.execute(delete(self.table).where(self.table.c.created_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)
