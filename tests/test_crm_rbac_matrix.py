"""Who may do what to a lead or deal, through the gateway: every role, relation and action.

The expected answers are written out below, from the rules of the design, not computed with the
code under test: 404 for a record the caller cannot see, 403 for one they can see but not change.
"""

import csv
import io
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_gateway.app import build_app as build_gateway
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_testkit.clients import app_client
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import serve_in_thread

pytestmark = pytest.mark.asyncio

ACTIONS = (
    "read", "update", "delete", "restore", "change_owner", "manage_members", "add_note",
    "read_audit", "export_audit",
)  # fmt: skip

# Y: allowed, F: 403, N: 404; for the audit: R rows of the record, E none of them, F 403.
EXPECTED: dict[tuple[str, str], str] = {
    ("admin", "owner"): "YYYYYYYRR",
    ("admin", "collaborator"): "YYYYYYYRR",
    ("admin", "follower"): "YYYYYYYRR",
    ("admin", "same_team"): "YYYYYYYRR",
    ("admin", "other_team"): "YYYYYYYRR",
    ("admin", "other_org"): "NNNNNNNEE",
    ("manager", "owner"): "YYYYYYYRR",
    ("manager", "collaborator"): "YYFFFFYEE",
    ("manager", "follower"): "YFFFFFFEE",
    ("manager", "same_team"): "YYYYYYYRR",
    ("manager", "other_team"): "NNNNNNNEE",
    ("manager", "other_org"): "NNNNNNNEE",
    ("rep", "owner"): "YYYYYYYFF",
    ("rep", "collaborator"): "YYFFFFYFF",
    ("rep", "follower"): "YFFFFFFFF",
    ("rep", "same_team"): "NNNNNNNFF",
    ("rep", "other_team"): "NNNNNNNFF",
    ("rep", "other_org"): "NNNNNNNFF",
    # a viewer never owns a record: nobody can hand one to them
    ("viewer", "collaborator"): "YFFFFFFFF",
    ("viewer", "follower"): "YFFFFFFFF",
    ("viewer", "same_team"): "YFFFFFFFF",
    ("viewer", "other_team"): "NNNNNNNFF",
    ("viewer", "other_org"): "NNNNNNNFF",
}


@pytest.fixture(scope="module")
def crm_url(service_env: dict[str, str]) -> Iterator[str]:
    with serve_in_thread(build_crm(CrmSettings(**service_env))) as url:
        yield url


class World:
    """The people around one acting user, and records standing in each relation to them."""

    def __init__(self, gateway: httpx.AsyncClient, users: Users, role: Role) -> None:
        self.gateway = gateway
        self.actor = users.make(role, teams=["t1"])
        self.teammate = users.make(Role.REP, teams=["t1"])
        self.stranger = users.make(Role.REP, teams=["t9"])
        self.heir = users.make(Role.REP, teams=["t1"])
        self.member = users.make(Role.REP, teams=["t9"])
        self.outsider = users.other_org().make(Role.ADMIN, teams=["t1"])

    async def join(self) -> None:
        for person in (self.actor, self.teammate, self.stranger, self.heir, self.member):
            response = await self.gateway.get("/api/users", headers=person.headers)
            assert response.status_code == 200, response.text

    async def record(self, plural: str, relation: str) -> str:
        creator = {
            "owner": self.actor,
            "same_team": self.teammate,
            "other_org": self.outsider,
        }.get(relation, self.stranger)
        body: dict[str, Any] = {"title": f"{relation} {uuid4().hex[:6]}"}
        if creator is self.outsider:
            body["team_id"] = "t1"
        created = await self.gateway.post(f"/api/{plural}", json=body, headers=creator.headers)
        assert created.status_code == 201, created.text
        record_id: str = created.json()["id"]
        if relation in {"collaborator", "follower"}:
            added = await self.gateway.put(
                f"/api/{plural}/{record_id}/members/{self.actor.sub}",
                json={"role": relation},
                headers=creator.headers,
            )
            assert added.status_code == 200, added.text
        return record_id

    async def deleted_record(self, plural: str, relation: str) -> str:
        record_id = await self.record(plural, relation)
        owner_side = {"owner": self.actor, "same_team": self.teammate, "other_org": self.outsider}
        creator = owner_side.get(relation, self.stranger)
        response = await self.gateway.delete(f"/api/{plural}/{record_id}", headers=creator.headers)
        assert response.status_code == 204, response.text
        return record_id

    async def act(self, plural: str, relation: str, action: str) -> httpx.Response:
        headers = self.actor.headers
        if action == "restore":
            record_id = await self.deleted_record(plural, relation)
            return await self.gateway.post(f"/api/{plural}/{record_id}/restore", headers=headers)
        record_id = await self.record(plural, relation)
        path = f"/api/{plural}/{record_id}"
        audit = {"entity_type": plural[:-1], "entity_id": record_id}
        calls: dict[str, tuple[str, str, Any, Any]] = {
            "read": ("GET", path, None, None),
            "update": ("PATCH", path, {"title": "changed"}, None),
            "delete": ("DELETE", path, None, None),
            "change_owner": ("POST", f"{path}/change-owner", {"new_owner_id": self.heir.sub}, None),
            "manage_members": (
                "PUT",
                f"{path}/members/{self.member.sub}",
                {"role": "follower"},
                None,
            ),
            "add_note": ("POST", f"{path}/notes", {"body": "a note"}, None),
            "read_audit": ("GET", "/api/audit", None, audit),
            "export_audit": ("GET", "/api/audit/export", None, audit),
        }
        method, url, body, params = calls[action]
        return await self.gateway.request(method, url, json=body, params=params, headers=headers)


def audit_rows(action: str, response: httpx.Response) -> int:
    if action == "read_audit":
        return len(response.json()["items"])
    return len(list(csv.DictReader(io.StringIO(response.text))))


@pytest.mark.parametrize("plural", ["leads", "deals"])
@pytest.mark.parametrize("role", [Role.ADMIN, Role.MANAGER, Role.REP, Role.VIEWER])
async def test_rbac_matrix_through_the_gateway(
    service_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    crm_url: str,
    users: Users,
    plural: str,
    role: Role,
) -> None:
    monkeypatch.setenv("CRM_URL", crm_url)
    settings = GatewaySettings(
        **service_env, RATE_LIMIT_DEFAULT="100000/60", RATE_LIMIT_SENSITIVE="100000/60"
    )
    failures: list[str] = []
    async with app_client(build_gateway(settings), "http://gateway") as gateway:
        world = World(gateway, users, role)
        await world.join()
        for (expected_role, relation), row in EXPECTED.items():
            if expected_role != role.value:
                continue
            for action, expected in zip(ACTIONS, row, strict=True):
                response = await world.act(plural, relation, action)
                got = _outcome(action, response)
                if got != expected:
                    failures.append(
                        f"{role.value} / {relation} / {action}: expected {expected}, got {got}"
                    )
    assert not failures, "\n".join(failures)


def _outcome(action: str, response: httpx.Response) -> str:
    if response.status_code in {403, 404}:
        assert response.headers["content-type"] == "application/problem+json"
        return {403: "F", 404: "N"}[response.status_code]
    assert response.is_success, response.text
    if action in {"read_audit", "export_audit"}:
        return "R" if audit_rows(action, response) > 0 else "E"
    return "Y"
