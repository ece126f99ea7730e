"""Paged sync: a Google listing brought into the mirror page by page.

Each page is applied in its own short transaction (never one held open across a Google call);
``finish`` — where the service stores its new watermark (a sync token, a time) — runs only after
the last page, so a sync that dies half-way starts again from the old watermark and applies those
pages again, harmlessly (the mirror writer announces nothing for a version it holds). When Google
no longer accepts a watermark (``WatermarkExpired``, e.g. a ``410`` on a sync token) the listing
is read whole instead: a full resync.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.google.resources import GoogleResource, Page
from pipedesk_common.uow import UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T", bound=GoogleResource)

SYNC_LISTINGS = Counter(
    "pipedesk_sync_listings_total",
    "Listings read by Google services' syncs, by product, kind (incremental, full) and outcome",
    ["product", "kind", "outcome"],
)


class WatermarkExpired(Exception):
    """Google refused the stored watermark: the listing must be read whole."""


@dataclass
class Listed:
    """What one listing read."""

    full: bool
    pages: int = 0
    items: int = 0


@dataclass(frozen=True)
class PagedSync(Generic[T]):
    product: str
    uow: UnitOfWork

    async def read(
        self,
        *,
        full: bool,
        fetch: Callable[[str | None], Awaitable[Page[T]]],
        apply: Callable[[AsyncSession, T], Awaitable[None]],
        finish: Callable[[AsyncSession, Page[T]], Awaitable[None]],
    ) -> Listed:
        """Every page from ``fetch(page_token)``: each item applied, then ``finish`` with the
        last page (which carries the next watermark)."""
        listed = Listed(full=full)
        token: str | None = None
        while True:
            page = await fetch(token)
            listed.pages += 1
            listed.items += len(page.items)
            async with self.uow.write() as session:
                for item in page.items:
                    await apply(session, item)
            if page.next_page_token:
                token = page.next_page_token
                continue
            async with self.uow.write() as session:
                await finish(session, page)
            SYNC_LISTINGS.labels(self.product, "full" if full else "incremental", "done").inc()
            return listed

    async def incremental_or_full(
        self,
        incremental: Callable[[], Awaitable[Listed]] | None,
        full: Callable[[], Awaitable[Listed]],
    ) -> Listed:
        """The incremental listing when there is a watermark (``incremental``), the full one
        when there is none or Google no longer accepts it."""
        if incremental is not None:
            try:
                return await incremental()
            except WatermarkExpired:
                log.info("a %s watermark expired; reading the listing whole", self.product)
                SYNC_LISTINGS.labels(self.product, "incremental", "expired").inc()
        return await full()
