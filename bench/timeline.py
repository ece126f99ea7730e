"""Timeline page: a lead with 1,000,000 items, loaded once with COPY, read three ways — the raw
prepared keyset query, the timeline service's API, and the same API through the gateway. Its
emails and meetings are each held by two users (the rep's copy and a teammate's), as when a
message sits in two mailboxes.

The dataset is kept in the bench database (schema ``bench`` remembers it) and reused by later
runs; it is written into the timeline service's tables, so its columns are checked first and a
schema that has moved on is reported instead of loaded wrongly.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.measure import HttpPool
from bench.pipeline import asyncpg_dsn

PAGE_SIZE = 50
KINDS = ("email", "email", "meeting", "audit", "email", "file", "meeting", "task", "audit", "note")
SHARED_KINDS = ("email", "meeting")
ITEM_COLUMNS = ("id", "org_id", "identity", "occurred_at")
HOLDER_COLUMNS = (
    "org_id", "source_key", "item_id", "owner_id", "private", "sharing", "held", "version",
    "event_id", "changed_at", "kind", "occurred_at", "title", "summary", "participants", "status",
    "actor_id", "source_service", "google_id", "url", "links", "updated_at",
)  # fmt: skip
LINK_COLUMNS = (
    "item_id", "record_type", "record_id", "org_id", "occurred_at", "explicit", "change_version",
)  # fmt: skip
TABLE_COLUMNS = {"items": ITEM_COLUMNS, "holders": HOLDER_COLUMNS, "links": LINK_COLUMNS}

META = """
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.timeline_dataset (
    name text PRIMARY KEY, org_id text NOT NULL, lead_id text NOT NULL, items int NOT NULL,
    deep_page int NOT NULL, deep_after_at timestamptz, deep_after_id uuid, deep_cursor text,
    loaded_seconds double precision NOT NULL);
"""

# The service's query (timeline_service.repository.record_items) for a lead's page, prepared:
# per item, the copy the viewer ($3) is shown and their level of it.
PAGE_QUERY = """
SELECT shown.*, l.item_id, l.occurred_at, l.change_version
FROM timeline.links l JOIN LATERAL (
    SELECT h.kind, h.title, h.summary, h.participants, h.status, h.actor_id, h.source_service,
           h.google_id, h.url,
           CASE WHEN h.owner_id = $3 THEN 3 WHEN h.private THEN 0
                WHEN h.sharing IS NULL OR h.sharing = 'full' THEN 3
                WHEN h.sharing = 'subject' THEN 2 ELSE 1 END AS level,
           bool_or(h.owner_id = $3) OVER () AS viewer_holds,
           bool_or(h.owner_id IS NOT NULL) OVER () AS owned
    FROM timeline.holders h
    WHERE h.item_id = l.item_id AND h.org_id = l.org_id
    ORDER BY h.held DESC, level DESC, h.changed_at DESC, h.source_key LIMIT 1
) shown ON true
WHERE l.org_id = $1 AND l.record_type = 'lead' AND l.record_id = $2 {after}
ORDER BY l.occurred_at DESC, l.item_id DESC LIMIT {limit}
"""
FIRST_PAGE = PAGE_QUERY.format(after="", limit=PAGE_SIZE + 1)
NEXT_PAGE = PAGE_QUERY.format(
    after="AND (l.occurred_at, l.item_id) < ($4, $5)", limit=PAGE_SIZE + 1
)
VIEWER = "bench-rep"  # the bench's user (USER in bench/__main__.py): the rep's copies are theirs
TEAMMATE = "bench-teammate"


@dataclass
class Dataset:
    name: str
    org_id: str
    lead_id: str
    items: int
    deep_page: int
    deep_after: tuple[datetime, uuid.UUID]
    deep_cursor: str
    loaded_seconds: float
    reused: bool


def uuid7_at(moment: datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 for ``moment`` (the timeline's ids are time-ordered UUIDv7 too)."""
    millis = int(moment.timestamp() * 1000)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | rng.getrandbits(12) << 64
    value |= 0b10 << 62 | rng.getrandbits(62)
    return uuid.UUID(int=value)


Rows = dict[str, list[tuple[Any, ...]]]


def _rows(org_id: str, lead_id: str, total: int, now: datetime, seed: int) -> Iterator[Rows]:
    """Per item: its row, its holders' rows (the rep's copy; a teammate's too for emails and
    meetings, shared at metadata level for emails) and its link to the lead."""
    rng = random.Random(seed)  # reproducible data, not secrets
    span = timedelta(days=3 * 365).total_seconds()
    lead_link = json.dumps([["lead", lead_id]])
    for index in range(total):
        occurred = now - timedelta(seconds=span * (index + rng.random()) / total)
        item_id = uuid7_at(occurred, rng)
        kind = KINDS[index % len(KINDS)]
        shared = kind in SHARED_KINDS
        content = (
            kind,
            occurred,
            f"{kind.capitalize()} {index}: quarterly review with the buying committee",
            "Agreed next steps on pricing, security review and the rollout plan for the "
            "second region; legal to send the redlines by Friday.",
            [f"buyer{index % 97}@customer.example", "rep@pipedesk.example"],
            "confirmed" if kind == "meeting" else None,
            VIEWER,
            "crm" if kind == "audit" else "gmail",
            None if kind == "audit" else f"g{index:09d}",
            None,
        )
        key = f"bench:{kind}:{index}"
        copies: list[tuple[str, str, str | None, datetime, str]] = [
            (key, VIEWER, "full", now, lead_link)
        ]
        if shared:
            teammate_sharing = "metadata" if kind == "email" else None
            earlier = now - timedelta(minutes=1)
            copies.append((f"{key}:teammate", TEAMMATE, teammate_sharing, earlier, "[]"))
        identity = f"{key}@pipedesk.example" if shared else None
        yield {
            "items": [(item_id, org_id, identity, occurred)],
            "holders": [
                (org_id, source_key, item_id, owner, False, sharing, True, 1, uuid.uuid4(), changed,
                 *content, links, now)
                for source_key, owner, sharing, changed, links in copies
            ],
            "links": [(item_id, "lead", lead_id, org_id, occurred, True, 0)],
        }  # fmt: skip


async def _check_columns(connection: asyncpg.Connection) -> None:
    for table, wanted in TABLE_COLUMNS.items():
        rows = await connection.fetch(
            "SELECT column_name, is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = 'timeline' AND table_name = $1",
            table,
        )
        found = {row["column_name"]: row for row in rows}
        missing = set(wanted) - found.keys()
        required_extra = {
            name
            for name, row in found.items()
            if name not in wanted and row["is_nullable"] == "NO" and row["column_default"] is None
        }
        if missing or required_extra:
            raise RuntimeError(
                f"timeline.{table} changed (missing {sorted(missing)}, new required "
                f"{sorted(required_extra)}): update bench/timeline.py's loader"
            )


async def load_dataset(
    database_url: str, *, name: str, org_id: str, lead_id: str, total: int
) -> float:
    """COPY ``total`` items linked to the lead; returns the seconds it took."""
    started = time.monotonic()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await _check_columns(connection)
        rows = _rows(org_id, lead_id, total, datetime.now(UTC) - timedelta(hours=1), seed=11)
        chunk = 100_000
        while True:
            batch = [item for _, item in zip(range(chunk), rows, strict=False)]
            if not batch:
                break
            async with connection.transaction():
                for table, columns in TABLE_COLUMNS.items():
                    await connection.copy_records_to_table(
                        table, schema_name="timeline", columns=columns,
                        records=[row for item in batch for row in item[table]],
                    )  # fmt: skip
        for table in TABLE_COLUMNS:
            await connection.execute(f"ANALYZE timeline.{table}")
    finally:
        await connection.close()
    return time.monotonic() - started


async def stored_dataset(database_url: str, name: str) -> asyncpg.Record | None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(META)
        return await connection.fetchrow(
            "SELECT * FROM bench.timeline_dataset WHERE name = $1", name
        )
    finally:
        await connection.close()


async def deep_page_position(
    database_url: str, org_id: str, lead_id: str, page: int
) -> tuple[datetime, uuid.UUID]:
    """The keyset position after page ``page - 1``: what the raw query for that page takes."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row = await connection.fetchrow(
            "SELECT occurred_at, item_id FROM timeline.links WHERE org_id = $1 "
            "AND record_type = 'lead' AND record_id = $2 "
            "ORDER BY occurred_at DESC, item_id DESC OFFSET $3 LIMIT 1",
            org_id,
            lead_id,
            (page - 1) * PAGE_SIZE - 1,
        )
    finally:
        await connection.close()
    assert row is not None
    return row["occurred_at"], row["item_id"]


async def walk_to_page(timeline: HttpPool, lead_id: str, page: int) -> str:
    """Follow ``next_cursor`` through the API to get the cursor of page ``page``."""
    cursor = ""
    for _ in range(page - 1):
        query = f"?limit={PAGE_SIZE}" + (f"&cursor={cursor}" if cursor else "")
        status, body = await timeline.call("GET", f"/api/timeline/lead/{lead_id}{query}")
        if status != 200:
            raise RuntimeError(f"walking the timeline answered {status}: {body[:300]!r}")
        cursor = json.loads(body)["next_cursor"]
    return cursor


async def save_dataset(database_url: str, dataset: Dataset) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(
            "INSERT INTO bench.timeline_dataset VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (name) DO UPDATE SET deep_cursor = excluded.deep_cursor",
            dataset.name,
            dataset.org_id,
            dataset.lead_id,
            dataset.items,
            dataset.deep_page,
            dataset.deep_after[0],
            dataset.deep_after[1],
            dataset.deep_cursor,
            dataset.loaded_seconds,
        )
    finally:
        await connection.close()


class RawPages:
    """The baseline: the same keyset query through prepared asyncpg statements."""

    def __init__(self, database_url: str, dataset: Dataset, connections: int = 10) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.dataset = dataset
        self.connections = connections

    async def __aenter__(self) -> RawPages:
        self.pool = await asyncpg.create_pool(
            self.dsn, min_size=self.connections, max_size=self.connections
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.pool.close()

    async def first(self) -> int:
        async with self.pool.acquire() as connection:
            statement = await connection.prepare(FIRST_PAGE)  # cached per connection
            rows = await statement.fetch(self.dataset.org_id, self.dataset.lead_id, VIEWER)
        return 200 if len(rows) == PAGE_SIZE + 1 else 500

    async def deep(self) -> int:
        after_at, after_id = self.dataset.deep_after
        async with self.pool.acquire() as connection:
            statement = await connection.prepare(NEXT_PAGE)
            rows = await statement.fetch(
                self.dataset.org_id, self.dataset.lead_id, VIEWER, after_at, after_id
            )
        return 200 if rows else 500


def dataset_name(total: int) -> str:
    return f"lead-{total}-{os.environ.get('BENCH_DATASET_TAG', 'v1')}"


async def ensure_dataset(
    database_url: str, crm: HttpPool, timeline: HttpPool, org_id: str, total: int
) -> Dataset:
    """The stored dataset if there is one (and its cursor still works), else a new one."""
    name = dataset_name(total)
    deep_page = min(1000, total // PAGE_SIZE)
    row = await stored_dataset(database_url, name)
    if row is not None:
        dataset = Dataset(
            name, row["org_id"], row["lead_id"], row["items"], row["deep_page"],
            (row["deep_after_at"], row["deep_after_id"]), row["deep_cursor"],
            row["loaded_seconds"], reused=True,
        )  # fmt: skip
        status, _ = await timeline.call(
            "GET", f"/api/timeline/lead/{dataset.lead_id}?limit={PAGE_SIZE}"
            f"&cursor={dataset.deep_cursor}",
        )  # fmt: skip
        if status != 200:  # the cursor format changed: walk again
            dataset.deep_cursor = await walk_to_page(timeline, dataset.lead_id, deep_page)
            await save_dataset(database_url, dataset)
        return dataset
    status, answer = await crm.call(
        "POST", "/api/leads", json.dumps({"title": "Timeline bench lead"}).encode()
    )
    if status != 201:
        raise RuntimeError(f"creating the timeline lead answered {status}: {answer[:300]!r}")
    lead_id = json.loads(answer)["id"]
    for _ in range(600):  # the timeline learns of the lead (its access list) from CRM's events
        status, _ = await timeline.call("GET", f"/api/timeline/lead/{lead_id}?limit=1")
        if status == 200:
            break
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError("the timeline never learned of the bench lead")
    print(f"loading {total:,} timeline items with COPY (once; later runs reuse them)…", flush=True)
    seconds = await load_dataset(
        database_url, name=name, org_id=org_id, lead_id=lead_id, total=total
    )
    after = await deep_page_position(database_url, org_id, lead_id, deep_page)
    cursor = await walk_to_page(timeline, lead_id, deep_page)
    dataset = Dataset(
        name, org_id, lead_id, total + 1, deep_page, after, cursor, seconds, reused=False
    )
    await save_dataset(database_url, dataset)
    return dataset
