"""An org's rule for what a Google product mirrored from a user's account once they disconnect
it (or Google revokes their access): one stated rule per product, an org setting.

- ``keep_metadata`` (the default): the mirrored items stay in PipeDesk and on every timeline
  that holds them, as last seen, no longer synced (Gmail lowers the mail to metadata level);
- ``remove``: the account's mirror rows leave PipeDesk, each copy announced as dropped by its
  holder (the product's removal event, timeline status ``removed``, as retention does), so an
  item no other account's copy holds leaves every timeline.

A product keeps each org's rule in a column ``on_disconnect`` of its org settings table
(``org_id`` primary key) and says how the user's items leave (``RemoveUserMirror``);
``rule_on_disconnect`` is then its ``access_ended``, run by the kit in the transaction of the
accounts service's ``disconnected``/``revoked`` announcement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

KEEP_METADATA: Final = "keep_metadata"
REMOVE: Final = "remove"
OnDisconnect = Literal["keep_metadata", "remove"]

# The user's mirrored items leave PipeDesk in the session's transaction:
# (runtime, session, org_id, user_id) → how many.
RemoveUserMirror = Callable[[Any, AsyncSession, str, str], Awaitable[int]]


async def disconnect_rule(session: AsyncSession, settings: Table, org_id: str) -> str:
    """The org's rule in ``settings`` (``keep_metadata`` when it never set one)."""
    rule = await session.scalar(select(settings.c.on_disconnect).where(settings.c.org_id == org_id))
    return str(rule) if rule is not None else KEEP_METADATA


def rule_on_disconnect(
    settings: Table, remove: RemoveUserMirror
) -> Callable[[Any, AsyncSession, str, str], Awaitable[None]]:
    """A product's ``access_ended``: the user's mirrored items removed when the org's rule in
    ``settings`` is ``remove``, kept otherwise."""

    async def ended(runtime: Any, session: AsyncSession, org_id: str, user_id: str) -> None:
        if await disconnect_rule(session, settings, org_id) == REMOVE:
            await remove(runtime, session, org_id, user_id)

    return ended
