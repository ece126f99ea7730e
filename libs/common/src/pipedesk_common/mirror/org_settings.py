"""An org's settings of a Google product: one row per org (``org_id`` primary key, an
``updated_at``), its columns' defaults standing for an org that never set them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlmodel import SQLModel

from pipedesk_common.clock import Clock
from pipedesk_common.uow import UnitOfWork

M = TypeVar("M", bound=SQLModel)


async def org_settings(uow: UnitOfWork, clock: Clock, model: type[M], org_id: str) -> M:
    """The org's settings (the defaults when it never set them)."""
    async with uow.read() as session:
        found = await session.get(model, org_id)
    return found or model(org_id=org_id, updated_at=clock.now())


async def set_org_settings(
    uow: UnitOfWork, clock: Clock, model: type[M], org_id: str, values: Mapping[str, Any]
) -> M:
    """The org's settings replaced by ``values``."""
    async with uow.write() as session:
        settings = await session.get(model, org_id, with_for_update=True)
        if settings is None:
            settings = model(org_id=org_id, updated_at=clock.now())
            session.add(settings)
        for name, value in values.items():
            setattr(settings, name, value)
        settings.updated_at = clock.now()
        await session.flush()
        return settings
