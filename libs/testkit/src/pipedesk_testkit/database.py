"""A database per test run, cloned from a template that ``alembic upgrade head`` built.

The template is keyed by a hash of every service's migration scripts, so it is rebuilt when a
migration changes and reused otherwise. Run databases are dropped at the end of the run, and
leftovers of crashed runs older than an hour are swept at the start of the next.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from importlib.resources import files
from pathlib import Path
from typing import Final

import asyncpg
from sqlalchemy import make_url

from pipedesk_common import migrations
from pipedesk_common.db import connect_raw

RUN_PREFIX: Final = "pd_run_"
TEMPLATE_PREFIX: Final = "pd_tpl_"
BUILD_PREFIX: Final = "pd_build_"
STALE_AFTER_SECONDS: Final = 4 * 3600  # well past the longest run CI allows (90 minutes)
_TEMPLATE_LOCK: Final = 727_001


def migrations_fingerprint() -> str:
    digest = hashlib.sha256()
    for service, location in sorted(migrations.registered_services().items()):
        package, _, folder = location.partition(":")
        root = Path(str(files(package).joinpath(folder)))
        digest.update(service.encode())
        for script in sorted(root.rglob("*.py")):
            digest.update(script.relative_to(root).as_posix().encode())
            digest.update(script.read_bytes())
    return digest.hexdigest()[:16]


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _admin(server_url: str) -> asyncpg.Connection:
    return await connect_raw(server_url, database="postgres")


async def _sweep(connection: asyncpg.Connection, keep_template: str) -> None:
    """Drop run databases of runs that died (old, and no one connected), and templates of older
    migration sets."""
    rows = await connection.fetch(
        """
        SELECT datname, extract(epoch FROM now() - (
                   pg_stat_file('base/' || oid || '/PG_VERSION', true)).modification) AS age
        FROM pg_database
        WHERE datname ~ '^pd_(run|tpl|build)_'
          -- A database someone is connected to belongs to a run that is alive, however old.
          AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = pg_database.oid)
        """
    )
    for row in rows:
        # No age: another run dropped it while this one was listing (missing_ok above).
        name, age = row["datname"], row["age"]
        if name == keep_template or age is None or float(age) < STALE_AFTER_SECONDS:
            continue
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _ensure_template(server_url: str, template: str) -> None:
    connection = await _admin(server_url)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", _TEMPLATE_LOCK)
        try:
            await _sweep(connection, template)
            exists = await connection.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", template
            )
            if exists:
                return
            building = f"{BUILD_PREFIX}{secrets.token_hex(4)}"
            await connection.execute(f'CREATE DATABASE "{building}"')
            try:
                await asyncio.to_thread(migrations.upgrade, _with_database(server_url, building))
                await connection.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
            except BaseException:
                await connection.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                raise
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _TEMPLATE_LOCK)
    finally:
        await connection.close()


async def create_run_database(server_url: str, purpose: str = "") -> str:
    """A fresh, fully migrated database for this run; returns its URL. ``purpose`` (a lowercase
    word) is part of its name."""
    template = TEMPLATE_PREFIX + migrations_fingerprint()
    await _ensure_template(server_url, template)
    name = f"{RUN_PREFIX}{purpose}{'_' if purpose else ''}{int(time.time())}_{secrets.token_hex(4)}"
    connection = await _admin(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await connection.close()
    return _with_database(server_url, name)


async def drop_database(url: str) -> None:
    connection = await _admin(url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await connection.close()


async def published_event_violations(url: str) -> list[str]:
    """Check every event in every service's outbox against its contract."""
    from pipedesk_common.events.catalog import contract_violations

    connection = await connect_raw(url)
    violations: list[str] = []
    try:
        schemas = await connection.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
        )
        for row in schemas:
            bodies = await connection.fetch(f'SELECT body FROM "{row["table_schema"]}".outbox')
            for body in bodies:
                violations += contract_violations(bytes(body["body"]))
    finally:
        await connection.close()
    return violations
