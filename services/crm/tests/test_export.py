"""The audit export streams: 100,000 rows go out with the process's memory staying small."""

import tracemalloc
from uuid import uuid4

import httpx
import pytest

from crm_service.app import build_app
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_common.db import connect_raw
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import serve_in_thread

pytestmark = pytest.mark.asyncio

ROWS = 100_000
PEAK_LIMIT = 20 * 1024 * 1024


async def test_export_streams_100000_rows_under_20_mb(
    service_env: dict[str, str], users: Users, database_url: str
) -> None:
    admin = users.make(Role.ADMIN)
    lead_id = str(uuid4())
    connection = await connect_raw(database_url)
    try:
        await connection.execute(
            """
            INSERT INTO crm.audit_log
                (id, org_id, record_type, record_id, action, actor_id, changes, occurred_at)
            SELECT gen_random_uuid(), $1, 'lead', $2, 'updated', 'someone',
                   jsonb_build_object('title', jsonb_build_array('before ' || n, 'after ' || n)),
                   now() - n * interval '1 second'
            FROM generate_series(1, $3) AS n
            """,
            admin.principal.org_id,
            lead_id,
            ROWS,
        )
    finally:
        await connection.close()
    with serve_in_thread(build_app(CrmSettings(**service_env))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            tracemalloc.start()
            try:
                lines = 0
                first = b""
                async with client.stream(
                    "GET",
                    "/api/audit/export",
                    params={"entity_type": "lead", "entity_id": lead_id},
                    headers=admin.headers,
                ) as response:
                    assert response.status_code == 200
                    async for chunk in response.aiter_bytes():
                        if not first:
                            first = chunk
                        lines += chunk.count(b"\n")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert first.startswith(b"id,occurred_at,entity_type,entity_id,action")
    assert lines == ROWS + 1
    assert peak < PEAK_LIMIT, f"peak {peak / 1e6:.1f} MB"
