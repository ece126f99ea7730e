"""The pool's check of a connection before it hands it out, against the real server."""

from typing import Any, ClassVar

import pytest
from sqlalchemy import text

from pipedesk_common.db import connect_raw, create_engine
from pipedesk_common.settings import BaseServiceSettings
from pipedesk_testkit.waiting import eventually


class PoolSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "pool-probe"


@pytest.mark.asyncio
async def test_a_pooled_connection_the_server_ended_is_replaced_before_a_request_uses_it(
    service_env: dict[str, Any], database_url: str
) -> None:
    engine = create_engine(PoolSettings(**service_env), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
        admin = await connect_raw(database_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
            await eventually(
                lambda: admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", first
                ),
                until=lambda alive: alive == 0,
            )
        finally:
            await admin.close()
        # The pool's one connection is dead: the check finds it out and the pool connects anew,
        # so the statement runs as if nothing happened.
        async with engine.connect() as connection:
            second = await connection.scalar(text("SELECT pg_backend_pid()"))
            assert await connection.scalar(text("SELECT 1")) == 1
        assert second != first
    finally:
        await engine.dispose()
