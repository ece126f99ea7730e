"""The schema is what ``alembic upgrade head`` builds, and the items of an earlier schema move into
it whole: each becomes an item held by one copy, served as before."""

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from alembic import command
from alembic.config import Config
from sqlalchemy import make_url

from pipedesk_common import migrations
from pipedesk_common.auth import Role
from pipedesk_common.db import connect_raw
from pipedesk_testkit.database import RUN_PREFIX, drop_database
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService
from timeline_service.models import TEXT_SEARCH_INDEX

BEFORE_HOLDERS = "0002"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def test_alembic_check_finds_no_drift(database_url: str) -> None:
    migrations.check(database_url, "timeline")


def upgrade(url: str, revision: str) -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def alembic_config(url: str) -> Config:
    return migrations.alembic_config(migrations.registered_services()["timeline"], url)


@pytest_asyncio.fixture
async def empty_database(database_url: str) -> AsyncIterator[str]:
    """A database of its own (named like a run's, so a crashed run's is swept), unmigrated."""
    name = f"{RUN_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    admin = await connect_raw(database_url, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        await drop_database(url)


def earlier_items(org_id: str, owner: str) -> list[dict[str, Any]]:
    """Items as revision 0002 stored them, one of each sort the timeline held."""

    def item(key: str, **fields: Any) -> dict[str, Any]:
        visibility = {
            "private": fields.get("private", False),
            "sharing": fields.get("sharing"),
            "owner_id": fields.get("owner_id"),
        }
        return {
            "id": uuid4(),
            "org_id": org_id,
            "source_key": key,
            "kind": "meeting",
            "occurred_at": T0,
            "title": key,
            "summary": None,
            "participants": [],
            "status": None,
            "actor_id": None,
            "source_service": "calendar",
            "google_id": None,
            "url": None,
            "version": 1,
            "event_id": uuid4(),
            "updated_at": T0 + timedelta(minutes=5),
            **visibility,
            **fields,
            "visibility": json.dumps(visibility),
        }

    return [
        item("crm:audit:a1", kind="audit", source_service="crm", summary="status: new → won",
             actor_id=owner, occurred_at=T0 - timedelta(days=2)),
        item("calendar:event:m1", summary="Agenda", participants=["buyer@acme.test", "rep@us.test"],
             status="confirmed", google_id="m1", url="https://meet.google.com/abc",
             owner_id=owner, private=True, version=4, occurred_at=T0 - timedelta(days=1)),
        item("calendar:event:m2", status="cancelled", owner_id=owner, version=2),
        item("gmail:message:g1", kind="email", source_service="gmail", summary="Body",
             participants=["buyer@acme.test"], owner_id=owner, sharing="subject",
             occurred_at=T0 + timedelta(days=1)),
        item("tasks:task:t1", kind="task", source_service="tasks", status="deleted",
             owner_id=owner, version=3, occurred_at=T0 + timedelta(days=2)),
    ]  # fmt: skip


async def populate(url: str, org_id: str, lead: str, contact: str, owner: str) -> list[Any]:
    rows = earlier_items(org_id, owner)
    columns = list(rows[0])
    connection = await connect_raw(url)
    try:
        await connection.copy_records_to_table(
            "items",
            schema_name="timeline",
            columns=columns,
            records=[tuple(row[name] for name in columns) for row in rows],
        )
        links = [(row["id"], "lead", lead, True) for row in rows]
        # The meeting was also matched to a contact through a participant.
        links.append((rows[1]["id"], "contact", contact, False))
        await connection.executemany(
            "INSERT INTO timeline.links (item_id, record_type, record_id, org_id, occurred_at,"
            " explicit, change_version) SELECT $1, $2, $3, i.org_id, i.occurred_at, $4, 7"
            " FROM timeline.items i WHERE i.id = $1",
            links,
        )
        await connection.execute(
            "INSERT INTO timeline.access_replica (record_type, record_id, org_id, owner_id,"
            " team_id, members, deleted, version)"
            " VALUES ('lead', $1, $2, $3, 't1', '{}', false, 1)",
            lead,
            org_id,
            owner,
        )
        await connection.execute(
            "INSERT INTO timeline.record_versions VALUES ($1, 'lead', $2, 7)", org_id, lead
        )
        return await connection.fetch("SELECT * FROM timeline.items ORDER BY source_key")
    finally:
        await connection.close()


async def fetch(url: str, sql: str) -> list[Any]:
    connection = await connect_raw(url)
    try:
        return list(await connection.fetch(sql))
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_items_of_the_earlier_schema_become_items_held_by_one_copy_without_loss(
    empty_database: str, timeline_app: OpenService, users: Users
) -> None:
    url = empty_database
    owner = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    lead, contact = str(uuid4()), str(uuid4())
    await asyncio.to_thread(upgrade, url, BEFORE_HOLDERS)
    before = await populate(url, users.org_id, lead, contact, owner.sub)
    links_before = await fetch(url, "SELECT * FROM timeline.links ORDER BY item_id, record_type")
    await asyncio.to_thread(upgrade, url, "head")

    items = {row["id"]: row for row in await fetch(url, "SELECT * FROM timeline.items")}
    holders = {row["source_key"]: row for row in await fetch(url, "SELECT * FROM timeline.holders")}
    assert set(items) == {row["id"] for row in before}
    assert set(holders) == {row["source_key"] for row in before}
    for row in before:
        copy, item = holders[row["source_key"]], items[row["id"]]
        assert copy["item_id"] == row["id"]
        assert (item["org_id"], item["identity"], item["occurred_at"]) == (
            row["org_id"], None, row["occurred_at"],
        )  # fmt: skip
        for name in ("kind", "occurred_at", "title", "summary", "participants", "status",
                     "actor_id", "source_service", "google_id", "url", "owner_id", "private",
                     "sharing", "version", "event_id", "updated_at"):  # fmt: skip
            assert copy[name] == row[name], (row["source_key"], name)
        assert copy["changed_at"] == row["updated_at"]
        assert copy["held"] is (row["status"] not in ("cancelled", "deleted"))
        assert json.loads(copy["links"]) == [["lead", lead]]  # its explicit links only
    links_after = await fetch(url, "SELECT * FROM timeline.links ORDER BY item_id, record_type")
    assert links_after == links_before

    # The API serves them as before: to the owner whole, to a manager under their sharing.
    pages: dict[str, list[dict[str, Any]]] = {}
    async with timeline_app(DATABASE_URL=url, CONSUMERS_ENABLED="false") as timeline:
        for viewer in (owner, manager):
            answer = await timeline.get(f"/api/timeline/lead/{lead}", headers=viewer.headers)
            assert answer.status_code == 200, answer.text
            pages[viewer.sub] = answer.json()["items"]
    seen = {item["title"]: item for item in pages[owner.sub]}
    assert [item["id"] for item in pages[owner.sub]] == [
        str(row["id"]) for row in sorted(before, key=lambda row: row["occurred_at"], reverse=True)
    ]
    assert seen["calendar:event:m1"]["summary"] == "Agenda"
    assert (seen["calendar:event:m2"]["status"], seen["tasks:task:t1"]["status"]) == (
        "cancelled",
        "deleted",
    )
    shown = {item["id"]: item for item in pages[manager.sub]}
    assert shown[seen["calendar:event:m1"]["id"]]["hidden"]["reason"] == "private"
    assert shown[seen["gmail:message:g1"]["id"]]["hidden"]["reason"] == "mailbox_subject_only"
    assert shown[seen["crm:audit:a1"]["id"]]["summary"] == "status: new → won"

    # And back: one copy per item is what the earlier schema held, so nothing is lost either.
    await asyncio.to_thread(downgrade, url, BEFORE_HOLDERS)
    restored = await fetch(url, "SELECT * FROM timeline.items ORDER BY source_key")
    assert [dict(row) for row in restored] == [dict(row) for row in before]


@pytest.mark.asyncio
async def test_the_search_index_is_built_where_pg_trgm_is_and_metrics_say_so(
    timeline_app: OpenService, database_url: str
) -> None:
    connection = await connect_raw(database_url)
    try:
        definition = await connection.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'timeline' AND indexname = $1",
            TEXT_SEARCH_INDEX,
        )
    finally:
        await connection.close()
    assert definition is not None  # the development and test servers offer pg_trgm
    assert "gin (title gin_trgm_ops, summary gin_trgm_ops)" in definition
    async with timeline_app() as timeline:
        metrics = (await timeline.get("/metrics")).text
    assert "\npipedesk_timeline_search_index 1.0" in metrics


@pytest.mark.asyncio
async def test_without_pg_trgm_the_schema_has_no_search_index_and_alembic_check_is_clean(
    empty_database: str,
) -> None:
    """A server where the extension is gone (dropped here, as where it was never offered): the
    index goes with it, the search scans, and the models still match the schema."""
    await asyncio.to_thread(upgrade, empty_database, "head")
    connection = await connect_raw(empty_database)
    try:
        await connection.execute("DROP EXTENSION pg_trgm CASCADE")
        assert not await connection.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname = $1", TEXT_SEARCH_INDEX
        )
    finally:
        await connection.close()
    await asyncio.to_thread(migrations.check, empty_database, "timeline")
    await asyncio.to_thread(downgrade, empty_database, "0003")
    await asyncio.to_thread(upgrade, empty_database, "head")  # and back, rebuilding the index
    await asyncio.to_thread(migrations.check, empty_database, "timeline")
