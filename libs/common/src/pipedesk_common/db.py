"""Async database access: an engine and a schema per service, a session per request."""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import URL, MetaData, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import registry
from sqlalchemy.util.concurrency import await_

from pipedesk_common.settings import BaseServiceSettings

DATABASE_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    DBAPIError,
)
"""What a lost or refused database link raises (through asyncpg or SQLAlchemy)."""

_UNREACHABLE: Final[tuple[type[BaseException], ...]] = (
    ConnectionError,  # refused, reset, aborted
    TimeoutError,
    socket.gaierror,
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or was lost
    asyncpg.CannotConnectNowError,  # 57P03: starting up or in recovery
    asyncpg.AdminShutdownError,  # 57P01: shutting down
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.ConnectionDoesNotExistError,  # the server closed it
    PoolTimeout,  # no pooled connection came free in time
)
_UNREACHABLE_ERRNOS: Final = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
)


def database_unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the database cannot be reached right now, as
    opposed to a statement or the data being wrong: the answer to the caller is then a 503 to
    retry, not a 500."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _UNREACHABLE) or (
            isinstance(current, OSError) and current.errno in _UNREACHABLE_ERRNOS
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_registry(schema: str) -> registry:
    """A mapper registry whose tables all live in ``schema``, with metadata of its own.

    Each service's models derive from ``SQLModel`` with their own registry, which keeps each
    service's tables out of the others' migrations even when several services are imported into
    one process (as the test suite does):
    ``class CrmModel(SQLModel, registry=schema_registry("crm"))``.
    """
    return registry(metadata=MetaData(schema=schema, naming_convention=NAMING_CONVENTION))


def ping_in_one_round_trip(dbapi_connection: Any) -> bool:
    """The pool's check that a connection it hands out is alive: one empty statement. The
    asyncpg dialect's own check wraps it in ``BEGIN`` and ``ROLLBACK`` (for PgBouncer's
    transaction pooling, which PipeDesk does not use), three round trips each time a request or
    a consumer's batch takes a connection. A connection found dead raises as the dialect's
    check does, so the pool replaces it and the caller never sees it."""
    try:
        await_(dbapi_connection.driver_connection.fetchrow(";"))
    except Exception as error:
        dbapi_connection._handle_exception(error)
    return True


def create_engine(settings: BaseServiceSettings, **overrides: Any) -> AsyncEngine:
    options: dict[str, Any] = {
        "pool_size": settings.process_pool_size,
        "max_overflow": settings.process_max_overflow,
        "pool_pre_ping": True,
        "pool_timeout": 10,
        # Statements are logged and raised without their parameters: those are user data.
        "hide_parameters": True,
        "connect_args": {
            "server_settings": {"application_name": f"pipedesk-{settings.service_name}"},
            "timeout": 5,
        },
    }
    options.update(overrides)
    engine = create_async_engine(settings.database_url, **options)
    if engine.dialect.driver == "asyncpg":
        engine.dialect.do_ping = ping_in_one_round_trip  # type: ignore[method-assign]
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay usable after commit: responses are built after the session dependency commits.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def connect_raw(
    url: str | URL, *, database: str | None = None, connect_timeout: float = 5.0
) -> asyncpg.Connection:
    """A plain asyncpg connection to the server of ``url`` (for LISTEN, admin and checks)."""
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=database or parsed.database,
        timeout=connect_timeout,
    )


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


REQUEST_CONNECTION: Final = "pipedesk_request_connection"
"""The request state's key for a connection whose open transaction the request's unit of work
joins (an ``Idempotency-Key``'s claim: the change and its remembered answer commit together)."""


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the route returns, rolled back if it raises.
    Inside a transaction the request already holds (``REQUEST_CONNECTION``), its commit is a
    savepoint's: the holder commits the whole."""
    held: AsyncConnection | None = getattr(request.state, REQUEST_CONNECTION, None)
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    if held is not None:
        sessionmaker = async_sessionmaker(
            held, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
        )
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit happens before the response is sent, so a failed commit is
# answered as an error instead of a success the database never saw.
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
