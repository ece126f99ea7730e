"""Units of work: how the Google-facing services use the database.

A CRM-style service holds one transaction per request (``SessionDep``). A Google-facing service
cannot: a transaction is never held open across a Google call, which may take seconds and fail
half-way. So each step of its work is a **unit of work** of its own: read what is needed
(``read()``), call Google with no transaction open, then apply Google's answer — the mirror and
its events in the outbox — in one short transaction (``write()``), which commits when the block
ends and rolls back if it raises.

``on_commit(session, action)`` runs an action once the current transaction has committed, never
if it rolls back: work recorded in a transaction (a sync request) is started only once it is
durable.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

_ON_COMMIT: Final = "pipedesk.on_commit"


class UnitOfWork:
    """The units of work of one service (its database, through its sessionmaker)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    def write(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        return self.sessionmaker.begin()

    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session for reads; nothing it does is committed."""
        return self.sessionmaker()


def on_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run ``action`` right after the session's current transaction commits (dropped if it
    rolls back). ``action`` runs on the event loop's thread and must not block."""
    actions: list[Callable[[], None]] | None = session.info.get(_ON_COMMIT)
    if actions is None:
        actions = session.info[_ON_COMMIT] = []
        event.listen(session.sync_session, "after_commit", _run_actions)
        event.listen(session.sync_session, "after_rollback", _drop_actions)
    actions.append(action)


def _run_actions(session: Session) -> None:
    actions: list[Callable[[], None]] = session.info.get(_ON_COMMIT, [])
    pending, actions[:] = list(actions), []
    for action in pending:
        action()


def _drop_actions(session: Session, *_args: Any) -> None:
    actions: list[Callable[[], None]] = session.info.get(_ON_COMMIT, [])
    actions.clear()
