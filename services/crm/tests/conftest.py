import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio

from crm_service.app import build_app
from crm_service.settings import CrmSettings
from pipedesk_common.db import connect_raw
from pipedesk_testkit.identities import ActingUser
from pipedesk_testkit.plugin import OpenService


@pytest.fixture
def crm_app(open_service: OpenService) -> OpenService:
    """``async with crm_app(clock=…, **settings) as client``: the CRM app, in-process, its
    periodic jobs off (a test runs the one it means to)."""
    return partial(open_service, build_app, CrmSettings, jobs_enabled=False)


@pytest_asyncio.fixture
async def crm(crm_app: OpenService) -> AsyncIterator[httpx.AsyncClient]:
    async with crm_app() as client:
        yield client


def assert_problem(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem of ``status`` that names each of ``fields``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    named = {error["field"] for error in problem.get("errors", [])}
    for name in fields:
        assert name in named, f"{name} not named in {problem}"
    return problem


class CrmApi:
    """Small helpers over the CRM's HTTP API, for tests that need records to act on."""

    assert_problem = staticmethod(assert_problem)

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create(self, plural: str, user: ActingUser, **fields: Any) -> dict[str, Any]:
        defaults = (
            {"name": f"N {uuid4().hex[:6]}"}
            if plural in {"contacts", "companies"}
            else {"title": f"T {uuid4().hex[:6]}"}
        )
        response = await self.client.post(
            f"/api/{plural}", json={**defaults, **fields}, headers=user.headers
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def audit(self, database_url: str, record_id: str) -> list[dict[str, Any]]:
        """The audit rows of a record, oldest first, straight from the database."""
        connection = await connect_raw(database_url)
        try:
            rows = await connection.fetch(
                "SELECT * FROM crm.audit_log WHERE record_id = $1 ORDER BY occurred_at, id",
                record_id,
            )
        finally:
            await connection.close()
        return [dict(row) | {"changes": json.loads(row["changes"])} for row in rows]


@pytest.fixture
def api(crm: httpx.AsyncClient) -> CrmApi:
    return CrmApi(crm)
