"""``Idempotency-Key`` for POSTs that create things in Google, across processes and restarts.

Two mechanisms, used together:

- **The remote id is chosen by us**, derived from the key (``remote_id``): a retried create
  asks Google for the same id, and Google's ``409`` for a taken id means "already done", even when
  the first attempt died between Google's answer and our commit.
- **The answer is remembered** (``remember``) in the same transaction as the change, so a retry
  gets the same answer (``replay``) without calling Google at all; a key reused with a different
  payload is refused (``422 idempotency-key-reused``). Remembered answers expire after
  ``retention`` (``prune``).

A remembered answer holds what the user created, so it is the user's data: a deletion of their
Google data or their org's offboarding deletes it (``pipedesk_common.erasure``). It is found by
its owner: an answer of ``IdempotentRequests`` keeps ``owner`` (``{"org_id", "user_id"}``) in its
body, one of ``IdempotencyKeys`` is scoped by ``owned_scope`` (the org and the user last).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipedesk_common.clock import Clock
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.errors import AppError, FieldError, InvalidInput

HEADER: Final = "Idempotency-Key"
MAX_KEY_LENGTH: Final = 255
KEY_PATTERN: Final = r"^[\x21-\x7e]{1,255}$"
_KEY = re.compile(KEY_PATTERN)
BASE32HEX: Final = "0123456789abcdefghijklmnopqrstuv"


class IdempotencyKeyReused(AppError):
    status, slug, title = (
        422,
        "idempotency-key-reused",
        "This Idempotency-Key was used for another request",
    )

    @classmethod
    def for_another_payload(cls) -> IdempotencyKeyReused:
        return cls(
            "this Idempotency-Key was sent before with a different payload",
            errors=[
                FieldError(
                    field="header.idempotency-key",
                    message="already used for a different payload",
                    code="reused",
                )
            ],
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


def owned_scope(action: str, org_id: str, user_id: str) -> str:
    """The scope of a key of ``IdempotencyKeys``: the action, then whose key it is (found by
    that suffix when the user's or the org's data is deleted)."""
    return f"{action}:{org_id}:{user_id}"


def upsert(
    table: Table,
    scope: str,
    key: str,
    digest: str,
    status: int,
    body: dict[str, Any],
    now: datetime,
    *,
    replace_if: ColumnElement[bool] | None = None,
) -> Insert:
    """Store a key's row, replacing the one already stored (only where ``replace_if`` holds)."""
    statement = insert(table).values(
        scope=scope, key=key, fingerprint=digest, status=status, body=body, created_at=now
    )
    return statement.on_conflict_do_update(
        index_elements=["scope", "key"],
        set_={
            name: statement.excluded[name]
            for name in ("fingerprint", "status", "body", "created_at")
        },
        where=replace_if,
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
            raise IdempotencyKeyReused.for_another_payload()
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
        now = self.clock.now()
        await session.execute(
            upsert(
                self.table,
                scope,
                key,
                digest,
                status,
                body,
                now,
                replace_if=self.table.c.created_at < now - self.retention,
            )
        )

    async def prune(self, session: AsyncSession) -> int:
        cutoff = self.clock.now() - self.retention
        result = await session.execute(delete(self.table).where(self.table.c.created_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)


# --- Idempotency-Key on any creating POST (IdempotentRequests) ---------------------------------

STATE_KEY: Final = "pipedesk_idempotency_claim"
IN_PROGRESS: Final = 0  # the status of a claimed key whose request has not answered yet
OWNER: Final = "owner"  # the member of a remembered answer naming whose request it was
REPLAYED_HEADER: Final = "Idempotent-Replayed"
_KEPT_HEADERS: Final = ("location", "etag")
PRUNED_PER_ANSWER: Final = 100


class IdempotencyKeyInProgress(AppError):
    status, slug, title = 409, "idempotency-key-in-progress", "A request with this key is running"


class ReplayedAnswer(Exception):
    """Raised by the ``idempotent`` dependency: answer this remembered answer, run nothing."""

    def __init__(self, answer: RememberedAnswer) -> None:
        super().__init__("replayed")
        self.answer = answer


def replayed_response(answer: RememberedAnswer) -> Response:
    headers = {str(k): str(v) for k, v in dict(answer.body.get("headers") or {}).items()}
    headers[REPLAYED_HEADER] = "true"
    return JSONResponse(
        answer.body.get("content"),
        status_code=answer.status,
        headers=headers,
        media_type=str(answer.body.get("media_type") or "application/json"),
    )


@dataclass(frozen=True)
class Claim:
    """A key this request holds while it runs (``scope``: org, caller and route, digested).

    ``owner`` is the database connection whose open transaction holds the key's advisory lock:
    the lock lives exactly as long as the request's process does."""

    requests: IdempotentRequests
    scope: str
    key: str
    owner: AsyncConnection
    # Whose request it is (``{"org_id", "user_id"}``), kept with the answer.
    caller: dict[str, str]


def claim_lock_id(scope: str, key: str) -> int:
    """The advisory lock a running request holds on its key (64 bits of its digest)."""
    digest = hashlib.sha256(f"{scope}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class IdempotentRequests:
    """Keys of the creating POSTs of one service, in its ``idempotency_keys`` table.

    ``claim`` takes the key before the route runs: a key answered before gives that answer again
    (same payload) or ``422`` (another payload); a key another request holds right now gives
    ``409``. A success (``2xx``) is remembered when the route has answered; any other answer lets
    go of the key, so a corrected request can use it again.

    Who holds a key is not guessed from the time: the request holds a transaction-level advisory
    lock on it, in a transaction kept open on a connection of its own until it answers. The
    route's unit of work (``SessionDep``) joins that transaction, and the answer is remembered in
    it: the change and its answer commit together, and the answer is sent only after. A request
    however slow keeps its key; one whose process died loses it at once (the database ends the
    dead connection's transaction, its change with it), and a retry then runs the request again,
    since a request that died mid-way left neither a change nor an answer."""

    def __init__(
        self,
        table: Table,
        clock: Clock,
        engine: AsyncEngine,
        *,
        retention: timedelta = timedelta(hours=24),
    ) -> None:
        self.table = table
        self.clock = clock
        self.engine = engine
        self.sessionmaker = create_sessionmaker(engine)
        self.retention = retention

    async def claim(
        self, scope: str, key: str, digest: str, *, org_id: str, user_id: str
    ) -> RememberedAnswer | Claim:
        caller = {"org_id": org_id, "user_id": user_id}
        owner = await self.engine.connect()
        try:
            lock = select(func.pg_try_advisory_xact_lock(claim_lock_id(scope, key)))
            held_by_us = bool((await owner.execute(lock)).scalar_one())
            answer = await self._take(scope, key, digest, held_by_us, caller)
        except BaseException:
            await self._let_go(owner)
            raise
        if answer is None:
            return Claim(self, scope, key, owner, caller)
        await self._let_go(owner)
        return answer

    async def _take(
        self, scope: str, key: str, digest: str, held_by_us: bool, caller: dict[str, str]
    ) -> RememberedAnswer | None:
        """None when this request now holds the key, else the answer given to it before."""
        table, now = self.table, self.clock.now()
        async with self.sessionmaker.begin() as session:
            row = (
                await session.execute(
                    select(table).where(table.c.scope == scope, table.c.key == key)
                )
            ).one_or_none()
            expired = row is not None and row.created_at < now - self.retention
            if held_by_us and (row is None or expired or row.status == IN_PROGRESS):
                # No answer to give: a new key, a forgotten one, or one whose holder died.
                in_progress = {OWNER: caller}
                await session.execute(
                    upsert(table, scope, key, digest, IN_PROGRESS, in_progress, now)
                )
                return None
        if row is not None and not expired and row.fingerprint != digest:
            raise IdempotencyKeyReused.for_another_payload()
        if row is None or expired or row.status == IN_PROGRESS:
            raise IdempotencyKeyInProgress(
                "a request with this Idempotency-Key is still running; retry later",
                headers={"Retry-After": "1"},
            )
        return RememberedAnswer(status=row.status, body=row.body)

    @staticmethod
    async def _let_go(owner: AsyncConnection) -> None:
        try:
            await owner.rollback()  # ends the transaction, and with it the lock
        finally:
            await owner.close()

    async def complete(self, claim: Claim, status: int, body: dict[str, Any] | None) -> None:
        """Remember the answer (None: an answer that cannot be replayed; the key is forgotten)
        in the claim's transaction, which holds the route's change too
        (``db.REQUEST_CONNECTION``), and commit the two at once."""
        table, owner = self.table, claim.owner
        this_key = (table.c.scope == claim.scope) & (table.c.key == claim.key)
        try:
            if body is None:
                await owner.execute(delete(table).where(this_key))
            else:
                kept = {**body, OWNER: claim.caller}
                await owner.execute(update(table).where(this_key).values(status=status, body=kept))
            # Forgotten keys go a few at a time, by the created_at index.
            expired = (
                select(table.c.scope, table.c.key)
                .where(table.c.created_at < self.clock.now() - self.retention)
                .limit(PRUNED_PER_ANSWER)
            )
            await owner.execute(
                delete(table).where(tuple_(table.c.scope, table.c.key).in_(expired))
            )
            await owner.commit()
        finally:
            await self._let_go(owner)

    async def release(self, claim: Claim) -> None:
        try:
            async with self.sessionmaker.begin() as session:
                await session.execute(
                    delete(self.table).where(
                        self.table.c.scope == claim.scope,
                        self.table.c.key == claim.key,
                        self.table.c.status == IN_PROGRESS,
                    )
                )
        finally:
            await self._let_go(claim.owner)


def request_scope(org_id: str, caller: str, method: str, path: str) -> str:
    """What a key is scoped to: the org, the caller and the route, digested (a fixed length)."""
    return hashlib.sha256("\x1f".join((org_id, caller, method, path)).encode()).hexdigest()


def body_fingerprint(body: bytes) -> str:
    """A JSON body's meaning (member order and spacing aside), else its bytes."""
    try:
        return fingerprint(json.loads(body) if body else None)
    except ValueError:
        return hashlib.sha256(body).hexdigest()


class IdempotencyMiddleware:
    """Remembers the answer of a request that claimed a key (or lets go of the key)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started: dict[str, Any] = {}
        chunks: list[bytes] = []
        held_back: list[Message] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            if not isinstance(scope.get("state", {}).get(STATE_KEY), Claim):
                await send(message)
                return
            # The answer of a request holding a key is kept, and sent only once it and the
            # change it reports have committed: never a success the database did not keep.
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            held_back.append(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            claim = scope.get("state", {}).get(STATE_KEY)
            if isinstance(claim, Claim):
                await claim.requests.release(claim)
            raise
        claim = scope.get("state", {}).get(STATE_KEY)
        if not isinstance(claim, Claim):
            return
        status = int(started.get("status", 500))
        if not 200 <= status < 300:  # nothing was done: the key is free for a corrected retry
            await claim.requests.release(claim)
            await _send_all(send, held_back)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in started.get("headers", [])
        }
        try:
            content = json.loads(b"".join(chunks) or b"null")
        except ValueError:  # an answer that cannot be replayed: the change is kept, the key freed
            await claim.requests.complete(claim, status, None)
        else:
            await claim.requests.complete(
                claim,
                status,
                {
                    "content": content,
                    "media_type": headers.get("content-type", "application/json").split(";")[0],
                    "headers": {name: headers[name] for name in _KEPT_HEADERS if name in headers},
                },
            )
        await _send_all(send, held_back)


async def _send_all(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)
