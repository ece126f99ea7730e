"""Sync health: per connected user, how a Google service's sync of their account stands.

One row per user in the service's ``sync_health`` table: the state (``idle``, ``syncing``,
``backing_off``, ``failing``, ``needs_reconnect``), the last success, the last error (problem
type and message), consecutive failures and when the next attempt is due. Every change is
published as ``<service>.sync.state_changed`` in the same transaction (the accounts service keeps
the replica users and admins read), and ``pipedesk_google_sync_accounts{product,state}`` counts
the accounts in each state (never per user).

A failure is judged by what it was: Google asking to slow down backs off; Google or a dependency
away backs off, then counts as failing after ``FAILING_AFTER`` failures in a row; access that is
gone (not connected, revoked) needs the user to reconnect, and nothing is tried until they do;
anything else is failing. After a failure the next attempt waits exponentially longer (at least
what Google's ``Retry-After`` asked), and the periodic sync leaves the user alone until then.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from prometheus_client import Gauge
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.clock import Clock
from pipedesk_common.errors import PROBLEM_TYPE_BASE, AppError, ServiceUnavailable
from pipedesk_common.events import new_event
from pipedesk_common.events.sync import SyncProblem, SyncState, SyncStateChanged
from pipedesk_common.google.calls import GoogleQuotaExhausted
from pipedesk_common.google.credentials import GoogleNotConnected, GoogleReconnectRequired
from pipedesk_common.google.resources import SkippedItem
from pipedesk_common.ids import new_id
from pipedesk_common.outbox import add_event
from pipedesk_common.uow import UnitOfWork

FAILING_AFTER: Final = 3
SKIPPED_NAMED: Final = 5
RETRY_BASE: Final = timedelta(minutes=1)
RETRY_CAP: Final = timedelta(hours=1)
ACCESS_GONE: Final = (GoogleNotConnected, GoogleReconnectRequired)
# What a change is about; a transition that changes none of these publishes nothing.
TRACKED: Final = (
    "state",
    "last_success_at",
    "last_error_type",
    "last_error_message",
    "consecutive_failures",
    "next_attempt_at",
)

SYNC_ACCOUNTS = Gauge(
    "pipedesk_google_sync_accounts",
    "Connected accounts by Google product and sync state",
    ["product", "state"],
)

Change = Callable[[Mapping[str, Any]], dict[str, Any]]


def sync_health_table(metadata: MetaData) -> Table:
    return Table(
        "sync_health",
        metadata,
        Column("org_id", String(255), nullable=False),
        Column("user_id", String(255), nullable=False),
        Column("id", Uuid, nullable=False, unique=True, comment="What its events name it by"),
        Column("state", String(20), nullable=False),
        Column("last_success_at", DateTime(timezone=True), nullable=True),
        Column("last_error_type", String(200), nullable=True),
        Column("last_error_message", Text, nullable=True),
        Column("consecutive_failures", Integer, nullable=False),
        Column("next_attempt_at", DateTime(timezone=True), nullable=True),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("version", Integer, nullable=False),
        PrimaryKeyConstraint("org_id", "user_id"),
        Index("ix_sync_health_state", "state"),
    )


def problem_of(error: BaseException) -> SyncProblem:
    """What a failure is recorded as: its problem type and detail (nothing internal)."""
    if isinstance(error, AppError):
        return SyncProblem(type=error.type_uri, message=error.detail or error.title)
    return SyncProblem(
        type=PROBLEM_TYPE_BASE + "internal-error", message="the sync failed unexpectedly"
    )


def skipped_problem(skipped: Sequence[SkippedItem]) -> SyncProblem:
    """What a run that skipped items records: how many, and the Google ids of the first few."""
    ids = ", ".join(item.id for item in skipped[:SKIPPED_NAMED])
    more = f" and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
    if all(item.partial for item in skipped):
        told = "item from Google was" if len(skipped) == 1 else "items from Google were"
        return SyncProblem(
            type=PROBLEM_TYPE_BASE + "sync-items-read-in-part",
            message=f"{len(skipped)} {told} stored with only what could be read: {ids}{more}",
        )
    told = (
        "item from Google could not be stored and was"
        if len(skipped) == 1
        else ("items from Google could not be stored and were")
    )
    return SyncProblem(
        type=PROBLEM_TYPE_BASE + "sync-items-skipped",
        message=f"{len(skipped)} {told} skipped: {ids}{more}",
    )


def judged(error: BaseException, failures: int) -> SyncState:
    """The state a failure leaves the sync in, after ``failures`` failures in a row."""
    if isinstance(error, ACCESS_GONE):
        return SyncState.NEEDS_RECONNECT
    if isinstance(error, GoogleQuotaExhausted) and error.rate_limited:
        return SyncState.BACKING_OFF
    if isinstance(error, ServiceUnavailable) and failures < FAILING_AFTER:
        return SyncState.BACKING_OFF
    return SyncState.FAILING


def retry_delay(error: BaseException, failures: int) -> timedelta:
    """Exponential, with jitter, capped; never sooner than the ``Retry-After`` Google gave."""
    bound = min(RETRY_CAP, RETRY_BASE * (1 << min(failures - 1, 16)))
    delay = bound / 2 + bound / 2 * random.random()  # noqa: S311 - jitter, not cryptography
    asked: str = error.headers.get("Retry-After", "") if isinstance(error, AppError) else ""
    return max(delay, timedelta(seconds=int(asked))) if asked.isdigit() else delay


class SyncHealth:
    """One service's ``sync_health`` rows and their events (see the module docstring)."""

    def __init__(
        self,
        product: str,
        table: Table,
        outbox: Table,
        uow: UnitOfWork,
        clock: Clock,
        contract: type[SyncStateChanged],
    ) -> None:
        self.product = product
        self.table = table
        self.outbox = outbox
        self.uow = uow
        self.clock = clock
        self.contract = contract

    # --- around each sync run (own units of work) ---------------------------------------------

    async def started(self, org_id: str, user_id: str) -> None:
        async with self.uow.write() as session:
            await self._change(session, org_id, user_id, lambda _row: {"state": SyncState.SYNCING})

    async def succeeded(
        self, org_id: str, user_id: str, *, skipped: Sequence[SkippedItem] = ()
    ) -> None:
        """Record a run that went to its end; items it ``skipped`` are its last error."""
        now = self.clock.now()
        problem = skipped_problem(skipped) if skipped else None
        succeeded = {
            "state": SyncState.IDLE,
            "last_success_at": now,
            "last_error_type": problem.type if problem else None,
            "last_error_message": problem.message if problem else None,
            "consecutive_failures": 0,
            "next_attempt_at": None,
        }
        async with self.uow.write() as session:
            await self._change(session, org_id, user_id, lambda _row: succeeded)

    async def failed(self, org_id: str, user_id: str, error: BaseException) -> SyncState:
        """Record a failed run; the state it leaves the sync in."""
        problem = problem_of(error)
        now = self.clock.now()

        def failure(row: Mapping[str, Any]) -> dict[str, Any]:
            failures = row["consecutive_failures"] + 1
            state = judged(error, failures)
            due = None if state is SyncState.NEEDS_RECONNECT else now + retry_delay(error, failures)
            return {
                "state": state,
                "last_error_type": problem.type,
                "last_error_message": problem.message,
                "consecutive_failures": failures,
                "next_attempt_at": due,
            }

        async with self.uow.write() as session:
            return await self._change(session, org_id, user_id, failure)

    # --- the user's Google access (part of the caller's transaction) --------------------------

    async def access_ended(
        self, session: AsyncSession, org_id: str, user_id: str, problem: SyncProblem
    ) -> None:
        """The user disconnected or Google revoked their grant: nothing runs until they
        reconnect."""
        ended = {
            "state": SyncState.NEEDS_RECONNECT,
            "last_error_type": problem.type,
            "last_error_message": problem.message,
            "next_attempt_at": None,
        }
        await self._change(session, org_id, user_id, lambda _row: ended)

    async def access_restored(self, session: AsyncSession, org_id: str, user_id: str) -> None:
        """The user connected again: due at once, failures forgotten (the error stays until a
        sync succeeds)."""
        restored = {"state": SyncState.IDLE, "consecutive_failures": 0, "next_attempt_at": None}
        await self._change(session, org_id, user_id, lambda _row: restored)

    # --- reading ------------------------------------------------------------------------------

    async def held_back(self) -> set[tuple[str, str]]:
        """The users the periodic sync leaves alone now: waiting for a reconnect, or for their
        next attempt after failures."""
        table = self.table
        async with self.uow.read() as session:
            rows = await session.execute(
                select(table.c.org_id, table.c.user_id).where(
                    or_(
                        table.c.state == SyncState.NEEDS_RECONNECT,
                        table.c.next_attempt_at > self.clock.now(),
                    )
                )
            )
            return {(org_id, user_id) for org_id, user_id in rows}

    async def count_states(self) -> dict[SyncState, int]:
        """How many accounts are in each state (every state, zero included)."""
        table = self.table
        async with self.uow.read() as session:
            rows = await session.execute(
                select(table.c.state, func.count()).group_by(table.c.state)
            )
            counted = {SyncState(state): count for state, count in rows}
        return {state: counted.get(state, 0) for state in SyncState}

    async def publish_gauges(self) -> None:
        for state, count in (await self.count_states()).items():
            SYNC_ACCOUNTS.labels(self.product, state.value).set(count)

    # --- one transition -----------------------------------------------------------------------

    async def _change(
        self, session: AsyncSession, org_id: str, user_id: str, change: Change
    ) -> SyncState:
        table, now = self.table, self.clock.now()
        await session.execute(
            insert(table)
            .values(
                id=new_id(),
                org_id=org_id,
                user_id=user_id,
                state=SyncState.IDLE,
                consecutive_failures=0,
                updated_at=now,
                version=0,
            )
            .on_conflict_do_nothing(index_elements=["org_id", "user_id"])
        )
        row = (
            await session.execute(
                select(table)
                .where(table.c.org_id == org_id, table.c.user_id == user_id)
                .with_for_update()
            )
        ).one()
        current = dict(row._mapping)
        wanted = {**current, **change(current)}
        if current["version"] > 0 and all(wanted[name] == current[name] for name in TRACKED):
            return SyncState(current["state"])
        wanted.update(version=current["version"] + 1, updated_at=now)
        await session.execute(
            update(table)
            .where(table.c.org_id == org_id, table.c.user_id == user_id)
            .values({name: wanted[name] for name in (*TRACKED, "version", "updated_at")})
        )
        await add_event(
            session,
            self.outbox,
            new_event(self._snapshot(wanted), org_id=org_id, actor_id=None, time=now),
        )
        return SyncState(wanted["state"])

    def _snapshot(self, row: Mapping[str, Any]) -> SyncStateChanged:
        error = (
            SyncProblem(type=row["last_error_type"], message=row["last_error_message"] or "")
            if row["last_error_type"]
            else None
        )
        changed_at: datetime = row["updated_at"]
        return self.contract(
            id=str(row["id"]),
            version=row["version"],
            org_id=row["org_id"],
            user_id=row["user_id"],
            product=self.product,
            state=SyncState(row["state"]),
            last_success_at=row["last_success_at"],
            last_error=error,
            consecutive_failures=row["consecutive_failures"],
            next_attempt_at=row["next_attempt_at"],
            changed_at=changed_at,
        )
