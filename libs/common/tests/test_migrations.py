"""Migrations run concurrently without failing: every replica of a service migrates before it
starts (Kubernetes runs them as init containers), and several services may create one database."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import make_url

from pipedesk_common import migrations
from pipedesk_common.db import connect_raw
from pipedesk_common.settings import DEFAULT_DATABASE_URL
from pipedesk_testkit.database import RUN_PREFIX, drop_database


@pytest.fixture
def missing_database_url() -> Iterator[str]:
    """The URL of a database that does not exist yet (named like a test run's, so a crashed
    run's leftover is swept by the next run); dropped afterwards."""
    server = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    name = f"{RUN_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    yield url
    asyncio.run(drop_database(url))


def head_of(service: str, url: str) -> str | None:
    location = migrations.registered_services()[service]
    return ScriptDirectory.from_config(migrations.alembic_config(location, url)).get_current_head()


async def version_of(url: str, schema: str) -> str | None:
    connection = await connect_raw(url)
    try:
        version: str | None = await connection.fetchval(
            f'SELECT version_num FROM "{schema}".alembic_version'
        )
        return version
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_concurrent_creators_of_one_database_all_succeed_and_one_creates_it(
    missing_database_url: str,
) -> None:
    created = await asyncio.gather(
        *(migrations.ensure_database(missing_database_url) for _ in range(8))
    )
    assert sorted(created) == [False] * 7 + [True]
    assert await migrations.ensure_database(missing_database_url) is False


def test_replicas_migrating_at_once_all_succeed_and_leave_the_schema_at_head(
    missing_database_url: str,
) -> None:
    """Two processes of the migration command, as two starting pods' init containers run it,
    against a database that does not exist yet."""
    services = ["crm", "tasks"]
    environment = {**os.environ, "DATABASE_URL": missing_database_url}
    runs = [
        subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "pipedesk_common.migrations", *services],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (_, errors) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, errors
    created = [out for out, _ in outputs if out.startswith("created database")]
    assert len(created) == 1
    for service in services:
        head = head_of(service, missing_database_url)
        assert asyncio.run(version_of(missing_database_url, service)) == head
