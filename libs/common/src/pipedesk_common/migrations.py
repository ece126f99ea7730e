"""Alembic helpers: each service migrates its own schema and keeps its version table there."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from pipedesk_common.settings import DEFAULT_DATABASE_URL

ENTRY_POINT_GROUP = "pipedesk.migrations"


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


def _run(connection: Connection, metadata: MetaData, schema: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_name=_include_name_in(schema),
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
        try:
            async with engine.connect() as connection:
                await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                await connection.commit()
                await connection.run_sync(_run, metadata, schema)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(migrate())


async def ensure_database(database_url: str) -> bool:
    """Create the database named in ``database_url`` if it does not exist; True if created."""
    url = make_url(database_url)
    admin = create_async_engine(
        url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            )
            if exists:
                return False
            await connection.execute(text(f'CREATE DATABASE "{url.database}"'))
            return True
    finally:
        await admin.dispose()


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
