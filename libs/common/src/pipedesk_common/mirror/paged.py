"""Paged sync: a Google listing brought into the mirror page by page.

Each page is applied in its own short transaction, which never waits on a Google call (the next
page is read from Google meanwhile); ``finish`` — where the service stores its new watermark (a
sync token, a time) — runs only after the last page, so a sync that dies half-way starts again
from the old watermark and applies those pages again, harmlessly (the mirror writer announces
nothing for a version it holds). When Google no longer accepts a watermark (``WatermarkExpired``,
e.g. a ``410`` on a sync token) the listing is read whole instead: a full resync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.google.resources import GoogleResource, Page, SkippedItem
from pipedesk_common.uow import UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T", bound=GoogleResource)

SYNC_LISTINGS = Counter(
    "pipedesk_sync_listings_total",
    "Listings read by Google services' syncs, by product, kind (incremental, full) and outcome",
    ["product", "kind", "outcome"],
)


SYNC_ITEMS_SKIPPED = Counter(
    "pipedesk_sync_items_skipped_total",
    "Items from Google a sync could not read or store, skipped so the sync goes on, by product",
    ["product"],
)

# What one item can do wrong, as opposed to the database or Google being away: a time past what
# Python holds, a shape the mapping refuses, or a value the database refuses (below).
ITEM_ERRORS: Final = (ValidationError, ValueError, ArithmeticError, LookupError)
# PostgreSQL's classes of errors about a value: data exceptions (too long, out of range, an
# untranslatable character) and program limits exceeded (an index row too large).
ITEM_SQLSTATE_CLASSES: Final = ("22", "54")


def is_item_error(error: BaseException) -> bool:
    """Whether ``error`` is about the item being stored rather than the database being away."""
    if isinstance(error, ITEM_ERRORS):
        return True
    if isinstance(error, StatementError):
        cause = error.orig
        sqlstate = str(getattr(cause, "sqlstate", None) or "")
        return (
            sqlstate.startswith(ITEM_SQLSTATE_CLASSES)
            or isinstance(cause.__cause__ if cause is not None else None, ValueError)
            or isinstance(cause, ValueError)
        )
    return False


_skipped: ContextVar[list[SkippedItem] | None] = ContextVar("skipped_items", default=None)


@contextmanager
def skipped_items() -> Iterator[list[SkippedItem]]:
    """The items the syncs run inside this block skipped (the run's sync health records them)."""
    collected: list[SkippedItem] = []
    token = _skipped.set(collected)
    try:
        yield collected
    finally:
        _skipped.reset(token)


# Skips made while a page is written whole: reported once the page is, dropped if it is undone.
_held: ContextVar[list[tuple[str, SkippedItem]] | None] = ContextVar("held_skips", default=None)


def skip(product: str, item: SkippedItem) -> None:
    """Log, count and collect one skipped item (its id and why, never its content)."""
    held = _held.get()
    if held is not None:
        held.append((product, item))
        return
    SYNC_ITEMS_SKIPPED.labels(product).inc()
    log.warning(
        "a %s item from Google is skipped",
        product,
        extra={"google_id": item.id, "reason": item.reason},
    )
    collected = _skipped.get()
    if collected is not None:
        collected.append(item)


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
        """Every page from ``fetch(page_token)``, as ``read_pages``."""
        return await self.read_pages(full=full, pages=_pages(fetch), apply=apply, finish=finish)

    async def read_pages(
        self,
        *,
        full: bool,
        pages: AsyncIterator[Page[T]],
        apply: Callable[[AsyncSession, T], Awaitable[None]],
        finish: Callable[[AsyncSession, Page[T]], Awaitable[None]],
        apply_all: Callable[[AsyncSession, list[T]], Awaitable[None]] | None = None,
    ) -> Listed:
        """Every page of ``pages``: each item applied, then ``finish`` with the last page (which
        carries the next watermark). An item that cannot be read or stored is skipped
        (``skip``), its own changes undone, and the sync goes on. ``apply_all``, when given,
        applies a page's items at once (in fewer statements); only a page it cannot store is
        applied item by item.

        The next page is read from Google while a page is written (its transaction waits on no
        Google call); a failure of either stops the other."""
        listed = Listed(full=full)
        last: Page[T] = Page(items=[])
        ahead = asyncio.ensure_future(anext(pages, None))
        try:
            while (page := await ahead) is not None:
                ahead = asyncio.ensure_future(anext(pages, None))
                listed.pages += 1
                listed.items += len(page.items)
                await self._write(page, apply, apply_all)
                last = page
        finally:
            ahead.cancel()
            await asyncio.wait([ahead])
            if not ahead.cancelled():
                ahead.exception()  # retrieved: the error stopping the listing is raised already
            await _closed(pages)
        async with self.uow.write() as session:
            await finish(session, last)
        SYNC_LISTINGS.labels(self.product, "full" if full else "incremental", "done").inc()
        return listed

    async def _write(
        self,
        page: Page[T],
        apply: Callable[[AsyncSession, T], Awaitable[None]],
        apply_all: Callable[[AsyncSession, list[T]], Awaitable[None]] | None,
    ) -> None:
        """One page in one transaction: its items at once (``apply_all``), or each in a
        savepoint of its own, so that one that cannot be stored is skipped alone."""
        for unreadable in page.skipped:
            skip(self.product, unreadable)
        async with self.uow.write() as session:
            if apply_all is not None and await _write_whole(session, page, apply_all):
                return
            for item in page.items:
                try:
                    async with session.begin_nested():
                        await apply(session, item)
                except Exception as error:
                    if not is_item_error(error):
                        raise
                    google_id = str(item.raw.get("id") or getattr(item, "id", "?"))
                    skip(self.product, SkippedItem(id=google_id, reason=_reason(error)))

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


async def _write_whole(
    session: AsyncSession,
    page: Page[T],
    apply_all: Callable[[AsyncSession, list[T]], Awaitable[None]],
) -> bool:
    """``page``'s items applied at once in a savepoint; False, with nothing of it kept, when an
    item cannot be stored."""
    held: list[tuple[str, SkippedItem]] = []
    token = _held.set(held)
    try:
        async with session.begin_nested():
            await apply_all(session, page.items)
    except Exception as error:
        if not is_item_error(error):
            raise
        return False
    finally:
        _held.reset(token)
    for product, skipped in held:
        skip(product, skipped)
    return True


async def _pages(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[Page[T]]:
    """The pages ``fetch(page_token)`` answers, from the first to the one without a next."""
    token: str | None = None
    while True:
        page = await fetch(token)
        yield page
        if not page.next_page_token:
            return
        token = page.next_page_token


async def _closed(pages: AsyncIterator[Page[T]]) -> None:
    """``pages`` closed, when it is a generator (a listing stopped half-way)."""
    if isinstance(pages, AsyncGenerator):
        await pages.aclose()


def _reason(error: BaseException) -> str:
    """Why an item was skipped, without the item's content (database errors name values)."""
    if isinstance(error, StatementError):
        return "the database refused a value of the item"
    if isinstance(error, ValidationError):
        return "the item does not have the shape the service reads"
    return f"the item could not be stored ({type(error).__name__})"
