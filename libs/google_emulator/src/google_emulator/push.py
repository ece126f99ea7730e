"""Push channels as Google's ``watch`` methods open them: one channel's notifications are posted
in order (each waits for the one before), with Google's ``X-Goog-*`` headers; a failed delivery is
recorded and forgotten, as Google forgets it."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx

from google_emulator.core import GoogleError


@dataclass
class PushChannel:
    id: str
    resource_id: str
    resource_uri: str
    owner: str
    address: str
    token: str | None
    expiration: datetime
    watched: dict[str, Any] = field(default_factory=dict)  # what it watches (API's own)
    number: int = 0
    stopped: bool = False
    last_task: asyncio.Task[None] | None = None

    def live(self, now: datetime) -> bool:
        return not self.stopped and self.expiration > now

    def answer(self) -> dict[str, Any]:
        """The channel resource a ``watch`` call answers."""
        body: dict[str, Any] = {
            "kind": "api#channel",
            "id": self.id,
            "resourceId": self.resource_id,
            "resourceUri": self.resource_uri,
            "expiration": str(int(self.expiration.timestamp() * 1000)),
        }
        if self.token is not None:
            body["token"] = self.token
        return body


@dataclass
class Deliveries:
    """The notifications posted so far, and the tasks still posting."""

    records: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def send(
        self, channel: PushChannel, resource_state: str, extra: dict[str, str] | None = None
    ) -> None:
        """Queue one notification behind the channel's earlier ones (so they arrive in order)."""
        channel.number += 1
        task = asyncio.create_task(
            self._deliver(channel, resource_state, channel.number, channel.last_task, extra or {})
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        channel.last_task = task

    async def _deliver(
        self,
        channel: PushChannel,
        resource_state: str,
        number: int,
        previous: asyncio.Task[None] | None,
        extra: dict[str, str],
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": resource_state,
            "X-Goog-Message-Number": str(number),
            "X-Goog-Channel-Expiration": format_datetime(
                channel.expiration.astimezone(UTC), usegmt=True
            ),
            **extra,
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        record: dict[str, Any] = {
            "channel_id": channel.id,
            "resource_id": channel.resource_id,
            "address": channel.address,
            "state": resource_state,
            "number": number,
            "headers": headers,
            "status_code": None,
        }
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.post(channel.address, content=b"", headers=headers)
            record["status_code"] = response.status_code
        except httpx.HTTPError as exc:  # Google ignores failed deliveries too
            record["error"] = type(exc).__name__
        self.records.append(record)


def _bad(message: str, reason: str = "invalid") -> GoogleError:
    return GoogleError(400, reason, message)


def open_channel(
    body: dict[str, Any],
    *,
    existing: dict[str, PushChannel],
    owner: str,
    resource_uri: str,
    now: datetime,
    default_ttl: timedelta,
    max_ttl: timedelta | None,
) -> PushChannel:
    """A channel from a ``watch`` request body (``id``, ``type``, ``address``, ``token``,
    ``expiration`` in ms): an expiration past the API's longest (``max_ttl``, if it has one) is cut
    to it, as Google does."""
    channel_id, address = body.get("id"), body.get("address")
    if not isinstance(channel_id, str) or not channel_id:
        raise _bad("Missing channel id.", "required")
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        raise _bad("Invalid or missing channel address.", "required")
    if body.get("type") not in ("web_hook", "webhook"):
        raise _bad("Invalid channel type: only web_hook is supported.")
    if channel_id in existing:
        raise _bad(f"Channel id {channel_id} not unique", "channelIdNotUnique")
    token = body.get("token")
    if token is not None and not isinstance(token, str):
        raise _bad("Invalid value for: token")
    expiration = now + default_ttl
    if body.get("expiration") is not None:
        try:
            expiration = datetime.fromtimestamp(int(body["expiration"]) / 1000, UTC)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _bad("Invalid value for: expiration") from exc
    if expiration <= now:
        raise _bad("Channel expiration must be in the future.")
    if max_ttl is not None:
        expiration = min(expiration, now + max_ttl)
    return PushChannel(
        id=channel_id,
        resource_id=secrets.token_urlsafe(20),
        resource_uri=resource_uri,
        owner=owner,
        address=address,
        token=token,
        expiration=expiration,
    )


def stop_channel(body: dict[str, Any], channels: dict[str, PushChannel], email: str) -> None:
    """``channels.stop``: only its owner stops a channel, named by id and resource id."""
    channel = channels.get(str(body.get("id", "")))
    if (
        channel is None
        or channel.stopped
        or channel.owner != email
        or channel.resource_id != body.get("resourceId")
    ):
        raise GoogleError(404, "notFound", f"Channel '{body.get('id')}' not found for project")
    channel.stopped = True
