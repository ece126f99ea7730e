"""The SQL that filters lead lists admits exactly the leads ``can`` lets each user read."""

import itertools
from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_common.rbac import AccessList, Action, can
from pipedesk_common.testing.plugin import Users

pytestmark = pytest.mark.asyncio


async def test_list_visibility_matches_can_for_every_role(
    crm: httpx.AsyncClient, users: Users
) -> None:
    owners = {
        "alice": users.make(Role.REP, teams=["t1"], sub=f"alice-{users.org_id}"),
        "bob": users.make(Role.REP, teams=["t2"], sub=f"bob-{users.org_id}"),
        "mia": users.make(Role.MANAGER, teams=["t1", "t2"], sub=f"mia-{users.org_id}"),
    }
    leads: dict[str, dict[str, Any]] = {}
    for (name, owner), team in itertools.product(owners.items(), ["t1", "t2"]):
        if team not in owner.principal.team_ids:
            continue
        response = await crm.post(
            "/api/leads", json={"title": f"{name}/{team}", "team_id": team}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        leads[response.json()["id"]] = response.json()
    readers = [
        *owners.values(),
        users.make(Role.ADMIN, teams=[]),
        users.make(Role.MANAGER, teams=["t1"]),
        users.make(Role.MANAGER, teams=["t3"]),
        users.make(Role.VIEWER, teams=["t2"]),
        users.make(Role.REP, teams=["t1"]),
        users.other_org().make(Role.ADMIN, teams=["t1", "t2"]),
    ]
    for reader in readers:
        listed = (
            await crm.get("/api/leads", params={"limit": 100}, headers=reader.headers)
        ).json()["items"]
        expected = {
            lead_id
            for lead_id, lead in leads.items()
            if can(
                reader.principal,
                Action.READ,
                AccessList(lead["org_id"], lead["owner_id"], lead["team_id"]),
            )
        }
        assert {item["id"] for item in listed} == expected, reader.principal
