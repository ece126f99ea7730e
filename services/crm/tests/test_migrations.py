"""The test database was built by ``alembic upgrade head``; the models match it exactly."""

import asyncio

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from pipedesk_common import migrations
from pipedesk_common.db import connect_raw


def test_alembic_check_finds_no_drift(database_url: str) -> None:
    migrations.check(database_url, "crm")


def test_the_schema_is_at_head_with_its_own_version_table(database_url: str) -> None:
    async def versions() -> list[str]:
        connection = await connect_raw(database_url)
        try:
            rows = await connection.fetch("SELECT version_num FROM crm.alembic_version")
            public = await connection.fetchval("SELECT to_regclass('public.alembic_version')")
        finally:
            await connection.close()
        assert public is None
        return [row["version_num"] for row in rows]

    head = ScriptDirectory.from_config(
        migrations.alembic_config(migrations.registered_services()["crm"], database_url)
    ).get_current_head()
    assert asyncio.run(versions()) == [head]


def test_the_audit_log_is_append_only(database_url: str) -> None:
    async def tamper() -> None:
        connection = await connect_raw(database_url)
        try:
            for statement in ("UPDATE crm.audit_log SET action = 'x'", "DELETE FROM crm.audit_log"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(tamper())
