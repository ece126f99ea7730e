"""libs/common's own test schema: the tables its primitives work on (coalescer, periodic jobs,
idempotency keys, outbox, inbox), made from the same factories a service uses, in a schema of
their own in the run's database. No service's tables are involved."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.schema import CreateSchema

from pipedesk_common.coalesce import coalescer_table
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.idempotency import idempotency_table
from pipedesk_common.inbox import InboxTables, inbox_tables
from pipedesk_common.mirror.health import sync_health_table
from pipedesk_common.outbox import outbox_table
from pipedesk_common.periodic import job_schedule_table

SCHEMA = "common_tests"


@dataclass(frozen=True)
class CommonSchema:
    metadata: MetaData
    work_requests: Table
    job_schedule: Table
    idempotency_keys: Table
    outbox: Table
    inbox: InboxTables
    sync_health: Table


@pytest.fixture(scope="session")
def common_schema(database_url: str) -> CommonSchema:
    """The test schema, created once per run in the run's database (dropped with it)."""
    metadata = MetaData(schema=SCHEMA)
    schema = CommonSchema(
        metadata=metadata,
        work_requests=coalescer_table(metadata),
        job_schedule=job_schedule_table(metadata),
        idempotency_keys=idempotency_table(metadata),
        outbox=outbox_table(metadata),
        inbox=inbox_tables(metadata),
        sync_health=sync_health_table(metadata),
    )

    async def create() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(CreateSchema(SCHEMA, if_not_exists=True))
                await connection.run_sync(metadata.create_all)
        finally:
            await engine.dispose()

    asyncio.run(create())
    return schema


@pytest_asyncio.fixture
async def sessions(
    database_url: str, common_schema: CommonSchema
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(database_url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def work_requests(common_schema: CommonSchema) -> Table:
    return common_schema.work_requests


@pytest.fixture(scope="session")
def job_schedule(common_schema: CommonSchema) -> Table:
    return common_schema.job_schedule


@pytest.fixture(scope="session")
def idempotency_keys(common_schema: CommonSchema) -> Table:
    return common_schema.idempotency_keys


@pytest.fixture(scope="session")
def outbox(common_schema: CommonSchema) -> Table:
    return common_schema.outbox


@pytest.fixture(scope="session")
def inbox(common_schema: CommonSchema) -> InboxTables:
    return common_schema.inbox
