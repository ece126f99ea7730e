"""Alembic helpers: each service migrates its own schema and keeps its version table there.

Migrations may run concurrently (every replica of a service migrates before it starts): creating
the database and upgrading a schema each hold a PostgreSQL advisory lock, so the first process
does the work and the others wait, then find nothing left to do.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

import asyncpg
from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from pipedesk_common.db import connect_raw
from pipedesk_common.settings import DEFAULT_DATABASE_URL

ENTRY_POINT_GROUP = "pipedesk.migrations"


def advisory_lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key (a signed 64-bit integer) named by ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def migration_lock(schema: str) -> int:
    return advisory_lock_key(f"pipedesk.migrate:{schema}")


def create_database_lock(database: str) -> int:
    return advisory_lock_key(f"pipedesk.create-database:{database}")


def registered_services() -> dict[str, str]:
    """Every installed service's migration scripts: service name → ``package:folder``."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def alembic_config(script_location: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, services: Iterable[str] | None = None) -> None:
    """``alembic upgrade head`` for the given services (default: every installed one)."""
    available = registered_services()
    for name in services or sorted(available):
        command.upgrade(alembic_config(available[name], database_url), "head")


def check(database_url: str, service: str) -> None:
    """``alembic check``: raises if the models and the migrated schema differ."""
    command.check(alembic_config(registered_services()[service], database_url))


def _include_name_in(schema: str) -> Any:
    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name == schema
        return True

    return include_name


def installed_extensions(connection: Connection) -> set[str]:
    return set(connection.execute(text("SELECT extname FROM pg_extension")).scalars())


def _include_object_with(installed: set[str]) -> Any:
    """Leave out of the comparison what the models declare for an extension the database does
    not have (``info={"requires_extension": …}``): its migration built it only where it could."""

    def include_object(
        item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        declared = compare_to if reflected else item
        info = getattr(declared, "info", None) if declared is not None else None
        needs = info.get("requires_extension") if info else None
        return needs is None or needs in installed

    return include_object


def _run(connection: Connection, metadata: MetaData, schema: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_name=_include_name_in(schema),
        include_object=_include_object_with(installed_extensions(connection)),
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations(metadata: MetaData) -> None:
    """The body of a service's ``env.py``: migrate ``metadata.schema`` online, asynchronously."""
    schema = metadata.schema
    if schema is None:
        raise ValueError("a service's metadata must name its schema")
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise ValueError("sqlalchemy.url is not set")

    async def migrate() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        lock = {"key": migration_lock(schema)}
        try:
            async with engine.connect() as connection:
                # Held by this session until unlocked (or the connection ends), across commits.
                await connection.execute(text("SELECT pg_advisory_lock(:key)"), lock)
                await connection.commit()
                try:
                    await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                    await connection.commit()
                    await connection.run_sync(_run, metadata, schema)
                    await connection.commit()
                finally:
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), lock)
                    await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(migrate())


async def ensure_database(database_url: str) -> bool:
    """Create the database named in ``database_url`` if it does not exist; True if created.

    A database that exists is found by connecting to it, so the migration user needs no access
    to the server's ``postgres`` database then; only creating one connects there (and needs the
    ``CREATEDB`` privilege)."""
    try:
        connection = await connect_raw(database_url)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await connection.close()
        return False
    name = make_url(database_url).database
    if not name:
        raise ValueError("the database URL names no database")
    admin = await connect_raw(database_url, database="postgres")
    try:
        # Concurrent creators queue here; each checks again once it holds the lock. Closing the
        # connection releases it.
        await admin.execute("SELECT pg_advisory_lock($1)", create_database_lock(name))
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await admin.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await admin.close()


def database_url_for(service: str) -> str:
    """A service's database: ``<SERVICE>_DATABASE_URL``, else the shared ``DATABASE_URL``."""
    return (
        os.environ.get(f"{service.upper()}_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Run every service's migrations")
    parser.add_argument("services", nargs="*", help="services to migrate (default: all)")
    args = parser.parse_args()
    available = registered_services()
    for service in args.services or sorted(available):
        url = database_url_for(service)
        if asyncio.run(ensure_database(url)):
            print(f"created database {make_url(url).database}")
        upgrade(url, [service])
        print(f"{service}: migrated to head")


if __name__ == "__main__":
    main()
