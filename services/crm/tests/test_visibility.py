"""The SQL that filters lead and deal lists admits exactly the records ``can`` lets each user
read, memberships included."""

import itertools
from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_common.rbac import AccessList, Action, MemberRole, can
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("plural", ["leads", "deals"])
async def test_list_visibility_matches_can_for_every_role(
    crm: httpx.AsyncClient, users: Users, plural: str
) -> None:
    owners = {
        "alice": users.make(Role.REP, teams=["t1"], sub=f"alice-{users.org_id}"),
        "bob": users.make(Role.REP, teams=["t2"], sub=f"bob-{users.org_id}"),
        "mia": users.make(Role.MANAGER, teams=["t1", "t2"], sub=f"mia-{users.org_id}"),
    }
    readers = [
        *owners.values(),
        users.make(Role.ADMIN, teams=[]),
        users.make(Role.MANAGER, teams=["t1"]),
        users.make(Role.MANAGER, teams=["t3"]),
        users.make(Role.VIEWER, teams=["t2"]),
        users.make(Role.REP, teams=["t1"]),
        users.make(Role.VIEWER, teams=["t3"]),
        users.other_org().make(Role.ADMIN, teams=["t1", "t2"]),
    ]
    for reader in readers:  # everyone joins the directory, so they can be made members
        assert (await crm.get("/api/users", headers=reader.headers)).status_code == 200
    records: dict[str, dict[str, Any]] = {}
    for (name, owner), team in itertools.product(owners.items(), ["t1", "t2"]):
        if team not in owner.principal.team_ids:
            continue
        response = await crm.post(
            f"/api/{plural}",
            json={"title": f"{name}/{team}", "team_id": team},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        records[response.json()["id"]] = response.json() | {"members": {}}
    # some records get members: a rep of t1 and a viewer of t3, with either member role
    outsiders = [readers[7], readers[8]]
    for index, (record_id, record) in enumerate(sorted(records.items())):
        member = outsiders[index % 2]
        role = [MemberRole.COLLABORATOR, MemberRole.FOLLOWER][index % 3 % 2]
        if index % 3 == 2:
            continue
        owner = next(o for o in owners.values() if o.sub == record["owner_id"])
        added = await crm.put(
            f"/api/{plural}/{record_id}/members/{member.sub}",
            json={"role": role.value},
            headers=owner.headers,
        )
        assert added.status_code == 200, added.text
        record["members"] = {member.sub: role}
    for reader in readers:
        listed = (
            await crm.get(f"/api/{plural}", params={"limit": 100}, headers=reader.headers)
        ).json()["items"]
        expected = {
            record_id
            for record_id, record in records.items()
            if can(
                reader.principal,
                Action.READ,
                AccessList(
                    record["org_id"], record["owner_id"], record["team_id"], record["members"]
                ),
            )
        }
        assert {item["id"] for item in listed} == expected, reader.principal
    assert any(record["members"] for record in records.values())
