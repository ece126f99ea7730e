"""Google push channels (Calendar, Drive): their tokens, their notifications, their bookkeeping.

A channel's token is an HMAC of its id with a service secret, so a notification is verified
without a database read and in constant time; several secrets may be accepted at once (the first
signs, the others are being rotated out). Google sends ``sync`` once when a channel opens and
``exists``/``update``… after changes; nothing in the request is trusted until the token is.

``PushChannels`` keeps a service's channels: opened on request (the row first, then Google, so a
notification arriving before Google's answer finds its channel), renewed before they expire (the
new channel first, then the old one stopped, so no change goes unnoticed in between), stopped on
request, suspended when the user's Google access ends and opened again when they reconnect.
What to watch and how is the service's: it passes the Google calls (``watch``, ``stop``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import uuid4

from prometheus_client import Counter
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import Clock
from pipedesk_common.errors import Unauthorized
from pipedesk_common.google.calls import GoogleQuotaExhausted, NotSent
from pipedesk_common.google.credentials import GoogleUser

log = logging.getLogger(__name__)

SYNC_STATE: Final = "sync"
MAX_HEADER: Final = 1024

CHANNEL_RENEWALS = Counter(
    "pipedesk_push_channel_renewals_total",
    "Push channels due for renewal, by outcome: renewed, failed (retried while it lives), "
    "lapsed (expired before it could be renewed)",
    ["outcome"],
)


def channel_token(secret: bytes, channel_id: str) -> str:
    digest = hmac.new(secret, channel_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token_matches(secrets: Sequence[bytes], channel_id: str, token: str) -> bool:
    """Whether ``token`` is the channel's token under one of ``secrets`` (constant time)."""
    offered = token.encode("ascii", "replace")
    matched = False
    for secret in secrets:
        # Every secret is tried, so the time taken does not tell which one matched.
        matched |= hmac.compare_digest(channel_token(secret, channel_id).encode(), offered)
    return matched


@dataclass(frozen=True)
class PushNotification:
    channel_id: str
    resource_id: str
    resource_state: str
    message_number: int | None
    token: str

    @property
    def is_sync(self) -> bool:
        return self.resource_state == SYNC_STATE


def verified_notification(headers: Mapping[str, str], secrets: Sequence[bytes]) -> PushNotification:
    """The notification in ``headers`` if its token is right; ``401`` otherwise."""
    channel_id = headers.get("x-goog-channel-id", "")
    token = headers.get("x-goog-channel-token", "")
    state = headers.get("x-goog-resource-state", "")
    resource_id = headers.get("x-goog-resource-id", "")
    if not channel_id or not token or not state or not resource_id:
        raise Unauthorized("not a push notification from a channel of ours")
    if any(len(value) > MAX_HEADER for value in (channel_id, token, state, resource_id)):
        raise Unauthorized("not a push notification from a channel of ours")
    if not token_matches(secrets, channel_id, token):
        raise Unauthorized("the channel token does not match")
    number = headers.get("x-goog-message-number", "")
    return PushNotification(
        channel_id=channel_id,
        resource_id=resource_id,
        resource_state=state,
        message_number=int(number) if number.isdigit() else None,
        token=token,
    )


def channels_table(metadata: MetaData) -> Table:
    """Push channels a service opened: whose, on what, until when, and whether stopped."""
    return Table(
        "push_channels",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("org_id", String(255), nullable=False),
        Column("user_id", String(255), nullable=False),
        Column("user_email", String(320), nullable=True, comment="For domain-wide delegation"),
        Column("resource", String(500), nullable=False, comment="What it watches, e.g. a calendar"),
        Column("resource_id", String(300), nullable=False, comment="Google's id of the watched"),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("stopped_at", DateTime(timezone=True), nullable=True),
        Column(
            "suspended",
            Boolean,
            nullable=False,
            server_default=text("false"),
            comment="Stopped because the user's Google access ended: opened again on reconnect",
        ),
        Index(
            "ix_push_channels_active_expiry",
            "expires_at",
            postgresql_where=text("stopped_at IS NULL"),
        ),
        Index("ix_push_channels_owner", "org_id", "user_id", "resource"),
    )


def expiration_of(milliseconds: str | int | None, default: datetime) -> datetime:
    """A channel's ``expiration`` (milliseconds since the epoch, as Google writes it)."""
    if milliseconds is None or not str(milliseconds).isdigit():
        return default
    return datetime.fromtimestamp(int(milliseconds) / 1000, UTC)


@dataclass(frozen=True)
class Channel:
    """One push channel as recorded."""

    id: str
    org_id: str
    user_id: str
    user_email: str | None
    resource: str
    resource_id: str
    expires_at: datetime
    stopped_at: datetime | None
    suspended: bool = False

    @property
    def user(self) -> GoogleUser:
        return GoogleUser(org_id=self.org_id, user_id=self.user_id, email=self.user_email)


@dataclass(frozen=True)
class OpenedChannel:
    """Google's answer to a watch request."""

    resource_id: str
    expiration: str | int | None


# (user, watched resource, channel id, token, lifetime in seconds) → Google's answer
WatchCall = Callable[[GoogleUser, str, str, str, int], Awaitable[OpenedChannel]]
# (user, channel id, Google's resource id) → None; "no such channel" must count as stopped
StopCall = Callable[[GoogleUser, str, str], Awaitable[None]]


def _channel(row: Any) -> Channel:
    return Channel(**{name: getattr(row, name) for name in Channel.__dataclass_fields__})


class PushChannels:
    def __init__(
        self,
        table: Table,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        secret: bytes,
        ttl: timedelta,
        renew_before: timedelta,
        watch: WatchCall,
        stop: StopCall,
    ) -> None:
        self.table = table
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.secret = secret
        self.ttl = ttl
        self.renew_before = renew_before
        self._watch = watch
        self._stop = stop

    async def open(self, user: GoogleUser, resource: str) -> Channel:
        channel_id = uuid4().hex
        now = self.clock.now()
        table = self.table
        async with self.sessionmaker.begin() as session:
            await session.execute(
                table.insert().values(
                    id=channel_id,
                    org_id=user.org_id,
                    user_id=user.user_id,
                    user_email=user.email,
                    resource=resource,
                    resource_id="",
                    expires_at=now + self.ttl,
                    created_at=now,
                )
            )
        try:
            opened = await self._watch(
                user,
                resource,
                channel_id,
                channel_token(self.secret, channel_id),
                int(self.ttl.total_seconds()),
            )
        except BaseException:
            async with self.sessionmaker.begin() as session:
                await session.execute(delete(table).where(table.c.id == channel_id))
            raise
        async with self.sessionmaker.begin() as session:
            row = (
                await session.execute(
                    update(table)
                    .where(table.c.id == channel_id)
                    .values(
                        resource_id=opened.resource_id,
                        expires_at=expiration_of(opened.expiration, now + self.ttl),
                    )
                    .returning(table)
                )
            ).one()
        return _channel(row)

    async def active(self, org_id: str, user_id: str, resource: str | None = None) -> list[Channel]:
        table = self.table
        query = select(table).where(
            table.c.org_id == org_id, table.c.user_id == user_id, table.c.stopped_at.is_(None)
        )
        if resource is not None:
            query = query.where(table.c.resource == resource)
        async with self.sessionmaker() as session:
            rows = (await session.execute(query.order_by(table.c.expires_at))).all()
        return [_channel(row) for row in rows]

    async def ensure(self, user: GoogleUser, resource: str) -> Channel:
        """The resource's live channel, opening one if none lasts beyond the renewal margin."""
        horizon = self.clock.now() + self.renew_before
        lasting = [
            channel
            for channel in await self.active(user.org_id, user.user_id, resource)
            if channel.expires_at > horizon
        ]
        return lasting[-1] if lasting else await self.open(user, resource)

    async def accepting(
        self, session: AsyncSession, notification: PushNotification
    ) -> Channel | None:
        """The live channel a verified notification belongs to, or None (unknown, stopped, or
        about another resource): such notifications are answered and ignored."""
        table = self.table
        row = (
            await session.execute(select(table).where(table.c.id == notification.channel_id))
        ).one_or_none()
        if row is None or row.stopped_at is not None:
            return None
        if row.resource_id and row.resource_id != notification.resource_id:
            return None
        return _channel(row)

    async def _mark_stopped(self, channel_id: str, *, suspended: bool = False) -> None:
        table = self.table
        values: dict[str, object] = {"stopped_at": self.clock.now()}
        if suspended:
            values["suspended"] = True
        async with self.sessionmaker.begin() as session:
            await session.execute(update(table).where(table.c.id == channel_id).values(**values))

    async def stop(self, channel: Channel, *, strict: bool = False, suspend: bool = False) -> None:
        """Stop a channel at Google and mark it stopped; if Google cannot be asked, it is marked
        stopped anyway (its notifications are ignored until it expires) — unless ``strict`` and
        Google itself was unavailable (a 5xx or rate limit after the retries, no connection):
        then the error is raised and the channel stays recorded as live, to be stopped again.
        Without credentials for the user (access revoked, refused) Google cannot be asked at
        all: the channel is marked stopped and lapses at its expiry. ``suspend``: marked
        suspended too, to be opened again if the user reconnects (``resume``)."""
        try:
            if channel.resource_id:
                await self._stop(channel.user, channel.id, channel.resource_id)
        except Exception as exc:
            if strict and isinstance(exc, GoogleQuotaExhausted | NotSent):
                raise
            log.warning("could not stop channel %s at Google", channel.id, exc_info=True)
        await self._mark_stopped(channel.id, suspended=suspend)

    async def stop_all(
        self, org_id: str, user_id: str, *, strict: bool = False, suspend: bool = False
    ) -> int:
        active = await self.active(org_id, user_id)
        for channel in active:
            await self.stop(channel, strict=strict, suspend=suspend)
        return len(active)

    async def resume(self, org_id: str, user_id: str) -> int:
        """The user reconnected: every resource watched when their access ended gets a channel
        again (one that cannot be opened stays suspended, for the next reconnect). Returns how
        many were opened."""
        table = self.table
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(table).where(
                        table.c.org_id == org_id,
                        table.c.user_id == user_id,
                        table.c.suspended.is_(True),
                    )
                )
            ).all()
        suspended = [_channel(row) for row in rows]
        opened = 0
        for resource in sorted({channel.resource for channel in suspended}):
            watched = [channel for channel in suspended if channel.resource == resource]
            try:
                await self.ensure(watched[-1].user, resource)
            except Exception:
                log.warning("could not watch %s again after a reconnect", resource, exc_info=True)
                continue
            opened += 1
            async with self.sessionmaker.begin() as session:
                await session.execute(
                    update(table)
                    .where(table.c.id.in_([channel.id for channel in watched]))
                    .values(suspended=False)
                )
        return opened

    async def renew_due(self) -> int:
        """Replace every channel expiring within ``renew_before``: the new one first, then the
        old one stopped. A channel that cannot be renewed is retried on the next run while it
        lives, and stopped once expired. Returns how many were renewed."""
        now = self.clock.now()
        table = self.table
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(table)
                    .where(
                        table.c.stopped_at.is_(None), table.c.expires_at <= now + self.renew_before
                    )
                    .order_by(table.c.expires_at)
                    .limit(500)
                )
            ).all()
        renewed = 0
        for old in (_channel(row) for row in rows):
            try:
                await self.open(old.user, old.resource)
                renewed += 1
                CHANNEL_RENEWALS.labels("renewed").inc()
            except Exception:
                if old.expires_at > now:
                    CHANNEL_RENEWALS.labels("failed").inc()
                    log.warning("could not renew channel %s; retrying later", old.id, exc_info=True)
                    continue
                CHANNEL_RENEWALS.labels("lapsed").inc()
                log.warning("channel %s expired and could not be renewed", old.id, exc_info=True)
            await self.stop(old)
        return renewed


async def suspend_user_channels(
    session: AsyncSession, table: Table, clock: Clock, org_id: str, user_id: str
) -> None:
    """The user's Google access is gone: mark their channels stopped without asking Google
    (which can no longer be asked), and suspended, to be opened again if they reconnect;
    notifications still arriving are ignored."""
    await session.execute(
        update(table)
        .where(table.c.org_id == org_id, table.c.user_id == user_id, table.c.stopped_at.is_(None))
        .values(stopped_at=clock.now(), suspended=True)
    )
