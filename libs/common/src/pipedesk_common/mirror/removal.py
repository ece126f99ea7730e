"""Mirrored items PipeDesk stops keeping while Google still holds them: a disconnected user's
(under the org's ``remove`` rule, ``pipedesk_common.mirror.disconnect``) or an org's older than
its retention (``pipedesk_common.mirror.retention``).

The items leave collection by collection (a calendar, a task list: a ``UserCollection``), each
collection's locked in id order, through ``MirrorWriter.remove``: each copy announced as
dropped by its holder (the product's removal event, timeline status ``removed``), then deleted
with its links, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from pipedesk_common.clock import Clock
from pipedesk_common.events import VersionedData
from pipedesk_common.mirror.disconnect import RemoveUserMirror
from pipedesk_common.mirror.models import UserCollection
from pipedesk_common.mirror.writer import MirrorWriter

C = TypeVar("C", bound=UserCollection)


async def remove_mirrored(
    session: AsyncSession,
    writer: MirrorWriter[Any, C, Any],
    collection: type[C],
    kind: type[VersionedData],
    *,
    org_id: str,
    user_id: str | None = None,
    where: Sequence[ColumnElement[bool]] = (),
) -> int:
    """The items of the org's collections (the user's only, when ``user_id`` is given) that
    match ``where`` removed, each copy announced as ``kind``; how many."""
    owners = [col(collection.org_id) == org_id]
    if user_id is not None:
        owners.append(col(collection.user_id) == user_id)
    parents = (
        await session.scalars(select(collection).where(*owners).order_by(col(collection.id)))
    ).all()
    items = writer.table
    removed = 0
    for parent in parents:
        rows = (
            await session.scalars(
                select(writer.model)
                .where(items.c[writer.parent_key] == parent.id, *where)
                .order_by(items.c.id)
                .with_for_update()
            )
        ).all()
        removed += await writer.remove(session, parent, rows, kind)
    return removed


def user_mirror_removal(
    writer: Callable[[Clock], MirrorWriter[Any, C, Any]],
    collection: type[C],
    kind: type[VersionedData],
) -> RemoveUserMirror:
    """A product's ``RemoveUserMirror`` (for ``rule_on_disconnect``): every item of the user's
    collections removed, each copy announced as ``kind``."""

    async def remove(runtime: Any, session: AsyncSession, org_id: str, user_id: str) -> int:
        return await remove_mirrored(
            session, writer(runtime.clock), collection, kind, org_id=org_id, user_id=user_id
        )

    return remove
