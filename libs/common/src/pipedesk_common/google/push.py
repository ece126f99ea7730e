"""Google push channels (Calendar, Drive): their tokens, their notifications, their bookkeeping.

A channel's token is an HMAC of its id with a service secret, so a notification is verified
without a database read and in constant time; several secrets may be accepted at once (the first
signs, the others are being rotated out). Google sends ``sync`` once when a channel opens and
``exists``/``update``… after changes; nothing in the request is trusted until the token is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, text

from pipedesk_common.errors import Unauthorized

SYNC_STATE: Final = "sync"
MAX_HEADER: Final = 1024


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
        Column("resource", String(500), nullable=False, comment="What it watches, e.g. a calendar"),
        Column("resource_id", String(300), nullable=False, comment="Google's id of the watched"),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("stopped_at", DateTime(timezone=True), nullable=True),
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
