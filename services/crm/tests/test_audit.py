"""The audit log: every write route leaves its rows (driven from the OpenAPI document), diffs are
exact, no bulk path bypasses the listeners, and each row is published with its projection."""

import csv
import io
import json
import re
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from crm_service.audit import act_as
from crm_service.models import Lead, outbox
from pipedesk_common.auth import Role
from pipedesk_common.clock import SystemClock
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.events import decode_event
from pipedesk_common.events.crm import AuditRecorded
from pipedesk_common.ids import new_id
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService

pytestmark = pytest.mark.asyncio

WRITE_METHODS = {"post", "put", "patch", "delete"}


class Driver:
    """Calls one write route of the CRM with real preconditions and says what it should audit."""

    def __init__(self, crm: httpx.AsyncClient, api: Any, admin: ActingUser, users: Users) -> None:
        self.crm = crm
        self.api = api
        self.admin = admin
        self.users = users

    async def user(self) -> str:
        sub = f"u-{uuid4().hex[:8]}"
        body = {"id": sub, "email": f"{sub}@example.com", "role": "rep", "team_ids": ["t1"]}
        response = await self.crm.post("/api/users", json=body, headers=self.admin.headers)
        assert response.status_code == 201, response.text
        return sub

    async def record(self, plural: str) -> str:
        return str((await self.api.create(plural, self.admin, team_id="t1")
                    if plural in {"leads", "deals"}
                    else await self.api.create(plural, self.admin))["id"])  # fmt: skip

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        self.request_id = uuid4().hex
        headers = {**self.admin.headers, "X-Request-ID": self.request_id}
        response = await self.crm.request(method.upper(), path, json=body, headers=headers)
        assert response.is_success, f"{method} {path}: {response.text}"
        return response

    async def drive(self, method: str, template: str) -> list[tuple[str, str]]:
        """Call ``method template``; answer the (record id, action) pairs it must have audited."""
        parts = template.strip("/").split("/")  # api, plural, {id}, rest…
        plural, rest = parts[1], parts[2:]
        title = "name" if plural in {"contacts", "companies", "teams"} else "title"
        if plural in {"users", "teams"}:
            return await self.drive_directory(method, template, plural, rest)
        if plural == "org" and rest == ["offboard"]:
            return await self.offboard(method, template)
        if not rest:
            body = {title: "new", **({"team_id": "t1"} if plural in {"leads", "deals"} else {})}
            created = await self.call(method, template, body)
            return [(created.json()["id"], "created")]
        record_id = await self.record(plural)
        path = re.sub(r"\{[a-z]+_id\}", record_id, template, count=1)
        tail = rest[1:]
        if not tail:
            if method == "patch":
                await self.call(method, path, {title: "changed"})
                return [(record_id, "updated")]
            await self.call(method, path)
            return [(record_id, "deleted")]
        if tail == ["restore"]:
            await self.call("delete", f"/api/{plural}/{record_id}")
            await self.call(method, path)
            return [(record_id, "restored")]
        if tail == ["convert"]:
            deal = (await self.call(method, path)).json()
            return [(record_id, "updated"), (deal["id"], "created")]
        if tail == ["change-owner"]:
            new_owner = await self.user()
            await self.call(method, path, {"new_owner_id": new_owner, "reason": "handover"})
            return [(record_id, "owner_changed")]
        return [(record_id, await self.drive_nested(method, path, tail))]

    async def drive_directory(
        self, method: str, template: str, plural: str, rest: list[str]
    ) -> list[tuple[str, str]]:
        if plural == "users" and not rest and method == "post":
            sub = f"u-{uuid4().hex[:8]}"
            body = {"id": sub, "email": f"{sub}@example.com", "role": "viewer"}
            await self.call(method, template, body)
            return [(sub, "created")]
        if plural == "users" and rest[-1] in {"deactivate", "reactivate"}:
            user_id = await self.user()
            path = template.replace("{user_id}", user_id)
            if rest[-1] == "deactivate":
                await self.call(method, path, {"reassign_to": self.admin.sub})
            else:
                deactivate = path.removesuffix("reactivate") + "deactivate"
                await self.call("post", deactivate, {"reassign_to": self.admin.sub})
                await self.call(method, path)
            return [(user_id, f"{rest[-1]}d")]
        if plural == "users" and rest[-1] == "delete-google-data":
            user_id = await self.user()
            await self.call(method, template.replace("{user_id}", user_id))
            return [(user_id, "google_data_delete_requested"), (user_id, "google_data_deleted")]
        if plural == "teams":
            team_id = f"team-{uuid4().hex[:6]}"
            if not rest:
                await self.call(method, template, {"id": team_id, "name": "Sales"})
                return [(team_id, "created")]
            await self.call("post", "/api/teams", {"id": team_id, "name": "Sales"})
            path = template.replace("{team_id}", team_id)
            if rest[-1] == "archive":
                await self.call(method, path)
                return [(team_id, "archived")]
            await self.call(method, path, {"name": "Sales EMEA"})
            return [(team_id, "updated")]
        raise AssertionError(f"no driver for {method.upper()} {template}")

    async def offboard(self, method: str, template: str) -> list[tuple[str, str]]:
        """An offboarding deletes its org's audit log with the rest: another org's admin asks,
        and only the job's row is left of that org."""
        leaving = self.users.other_org().make(Role.ADMIN)
        answer = await self.crm.request(
            method,
            template,
            json={"confirm_org_id": leaving.principal.org_id},
            headers=leaving.headers,
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "completed"
        assert answer.json()["report"]["crm"]["audit_log"] >= 1
        return []

    async def drive_nested(self, method: str, path: str, tail: list[str]) -> str:
        if tail[0] == "members":
            member = await self.user()
            member_path = path.replace("{user_id}", member)
            if method == "put":
                await self.call(method, member_path, {"role": "follower"})
                return "member_added"
            await self.call("put", member_path, {"role": "follower"})
            await self.call(method, member_path)
            return "member_removed"
        if tail[0] == "notes":
            if len(tail) == 1:
                await self.call(method, path, {"body": "hello"})
                return "note_added"
            note = (
                await self.call(
                    "post", path.split("/notes", maxsplit=1)[0] + "/notes", {"body": "a"}
                )
            ).json()
            note_path = path.replace("{note_id}", note["id"])
            if method == "patch":
                await self.call(method, note_path, {"body": "b"})
                return "note_edited"
            await self.call(method, note_path)
            return "note_deleted"
        raise AssertionError(f"no driver for {method.upper()} {path}: audit it and drive it here")


async def test_every_write_route_of_the_openapi_leaves_its_audit_rows_and_events(
    crm_app: OpenService, api: Any, users: Users, database_url: str
) -> None:
    # A deactivation here has no other service to call: the CRM's own part is audited.
    async with crm_app(lifecycle_services=[]) as crm:
        await drive_every_write_route(crm, api, users, database_url)


async def drive_every_write_route(
    crm: httpx.AsyncClient, api: Any, users: Users, database_url: str
) -> None:
    admin = users.make(Role.ADMIN, teams=["t1"])
    document = (await crm.get("/openapi.json")).json()
    routes = [
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in WRITE_METHODS and path.startswith("/api/")
    ]
    assert len(routes) == 43
    driver = Driver(crm, api, admin, users)
    audited: list[str] = []
    for method, template in routes:
        for record_id, action in await driver.drive(method, template):
            rows = await api.audit(database_url, record_id)
            matching = [row for row in rows if row["action"] == action]
            assert len(matching) == 1, f"{method} {template}: {[r['action'] for r in rows]}"
            row = matching[0]
            assert row["actor_id"] == admin.sub
            assert row["org_id"] == admin.principal.org_id
            assert row["request_id"] == driver.request_id, f"{method} {template}"
            audited.append(str(row["id"]))
    published = await _published_audit(database_url)
    record_types = {"lead", "deal", "contact", "company"}
    for entry_id in audited:
        rows = await _audit_row(database_url, entry_id)
        if rows["record_type"] in record_types:
            event = published[entry_id]
            assert event.changes == {k: tuple(v) for k, v in rows["changes"].items()}
            assert event.record.id == rows["record_id"]
            assert event.timeline.source.key == f"crm:audit:{entry_id}"


async def _audit_row(database_url: str, entry_id: str) -> dict[str, Any]:
    from pipedesk_common.db import connect_raw

    connection = await connect_raw(database_url)
    try:
        row = await connection.fetchrow("SELECT * FROM crm.audit_log WHERE id = $1", UUID(entry_id))
    finally:
        await connection.close()
    assert row is not None
    return dict(row) | {"changes": json.loads(row["changes"])}


async def _published_audit(database_url: str) -> dict[str, AuditRecorded]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            bodies = (
                await connection.execute(
                    select(outbox.c.body).where(outbox.c.routing_key == "crm.audit.recorded")
                )
            ).scalars()
            found: dict[str, AuditRecorded] = {}
            for body in bodies:
                data = decode_event(body).data
                assert isinstance(data, AuditRecorded)
                found[data.id] = data
            return found
    finally:
        await engine.dispose()


async def test_a_multi_field_update_is_audited_with_the_exact_old_and_new_values(
    crm: httpx.AsyncClient, api: Any, users: Users, database_url: str
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    lead = await api.create(
        "leads", rep, title="Acme", priority="low", tags=["a"], source="web", next_step="call"
    )
    response = await crm.patch(
        f"/api/leads/{lead['id']}",
        json={
            "title": "Acme Group",
            "priority": "urgent",
            "tags": ["a", "b"],
            "estimated_value": "9999.99",
            "currency": "EUR",
            "source": None,
            "next_step": "call",  # unchanged: not in the diff
            "sla_due_at": "2027-03-01T09:30:00+01:00",
        },
        headers=rep.headers,
    )
    assert response.status_code == 200, response.text
    rows = await api.audit(database_url, lead["id"])
    assert [row["action"] for row in rows] == ["created", "updated"]
    assert rows[1]["changes"] == {
        "title": ["Acme", "Acme Group"],
        "priority": ["low", "urgent"],
        "tags": [["a"], ["a", "b"]],
        "estimated_value": [None, "9999.99"],
        "currency": [None, "EUR"],
        "source": ["web", None],
        "sla_due_at": [None, "2027-03-01T09:30:00+01:00"],
    }
    assert rows[0]["changes"]["title"] == [None, "Acme"]
    published = await _published_audit(database_url)
    event = published[str(rows[1]["id"])]
    assert event.timeline.title == "Lead updated"
    assert event.timeline.summary is not None
    assert event.timeline.summary.startswith("currency: — → EUR; estimated_value: — → 9999.99")


def _lead(owner: ActingUser) -> Lead:
    now = SystemClock().now()
    return Lead(
        id=new_id(),
        org_id=owner.principal.org_id,
        title="t",
        owner_id=owner.sub,
        status="new",
        priority="normal",
        created_by=owner.sub,
        created_at=now,
        updated_at=now,
    )


async def test_no_write_bypasses_the_audit(database_url: str, users: Users) -> None:
    rep = users.make(Role.REP)
    engine = create_async_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            act_as(session, rep.principal, SystemClock())
            with pytest.raises(PermissionError, match="row by row"):
                await session.execute(update(Lead).values(title="bulk"))
            with pytest.raises(PermissionError, match="row by row"):
                await session.execute(delete(Lead))
            lead = _lead(rep)
            session.add(lead)
            await session.flush()
            await session.delete(lead)
            with pytest.raises(PermissionError, match="never removed"):
                await session.flush()
            await session.rollback()
        async with create_sessionmaker(engine)() as session:  # no actor: the flush fails
            session.add(_lead(rep))
            with pytest.raises(PermissionError, match="needs an actor"):
                await session.flush()
            await session.rollback()
        async with create_sessionmaker(engine)() as session:  # another org's actor: refused
            act_as(session, users.other_org().make(Role.ADMIN).principal, SystemClock())
            session.add(_lead(rep))
            with pytest.raises(PermissionError, match="own org"):
                await session.flush()
            await session.rollback()
    finally:
        await engine.dispose()


async def test_audit_query_filters_pages_and_is_scoped_by_role(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    outsider_rep = users.make(Role.REP, teams=["t2"])
    lead = await api.create("leads", rep)
    other = await api.create("leads", outsider_rep)
    for title in ("b", "c", "d"):
        await crm.patch(f"/api/leads/{lead['id']}", json={"title": title}, headers=rep.headers)
    admin = users.make(Role.ADMIN, teams=[])
    manager = users.make(Role.MANAGER, teams=["t1"])
    params = {"entity_type": "lead", "entity_id": lead["id"], "action": "updated", "limit": 2}
    first = (await crm.get("/api/audit", params=params, headers=admin.headers)).json()
    assert [item["changes"]["title"][1] for item in first["items"]] == ["d", "c"]
    second = await crm.get(
        "/api/audit", params={**params, "cursor": first["next_cursor"]}, headers=admin.headers
    )
    assert [item["changes"]["title"][1] for item in second.json()["items"]] == ["b"]
    assert second.json()["next_cursor"] is None
    api.assert_problem(
        await crm.get(
            "/api/audit",
            params={**params, "cursor": first["next_cursor"], "action": "created"},
            headers=admin.headers,
        ),
        400,
        "query.cursor",
    )
    by_actor = await crm.get(
        "/api/audit", params={"actor_id": outsider_rep.sub}, headers=admin.headers
    )
    assert {(item["entity_type"], item["entity_id"]) for item in by_actor.json()["items"]} == {
        ("lead", other["id"]),
        ("user", outsider_rep.sub),  # their first request put them in the directory
    }
    seen_by_manager = (await crm.get("/api/audit", headers=manager.headers)).json()["items"]
    assert {item["entity_id"] for item in seen_by_manager} == {lead["id"]}
    for refused in (rep, users.make(Role.VIEWER, teams=["t1"])):
        api.assert_problem(await crm.get("/api/audit", headers=refused.headers), 403)
        api.assert_problem(await crm.get("/api/audit/export", headers=refused.headers), 403)
    outsider = users.other_org().make(Role.ADMIN)
    foreign = (await crm.get("/api/audit", headers=outsider.headers)).json()["items"]
    assert {item["org_id"] for item in foreign} == {outsider.principal.org_id}  # its own arrival
    assert lead["id"] not in {item["entity_id"] for item in foreign}
    for bad, field in (
        ({"entity_type": "invoice"}, "query.entity_type"),
        ({"action": "hacked"}, "query.action"),
        ({"since": "yesterday"}, "query.since"),
        ({"until": "2026-01-01T00:00:00"}, "query.until"),
        ({"limit": 1000}, "query.limit"),
    ):
        api.assert_problem(
            await crm.get("/api/audit", params=bad, headers=admin.headers), 422, field
        )


async def test_export_is_csv_of_the_same_filtered_entries(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    admin = users.make(Role.ADMIN, teams=["t1"])
    lead = await api.create("leads", admin, title="Acme")
    sub = f"u-{uuid4().hex[:8]}"
    provision = {"id": sub, "email": f"{sub}@example.com", "role": "rep", "team_ids": ["t1"]}
    await crm.post("/api/users", json=provision, headers=admin.headers)
    handed = await crm.post(
        f"/api/leads/{lead['id']}/change-owner",
        json={"new_owner_id": sub, "reason": '=HYPERLINK("http://evil")'},
        headers=admin.headers,
    )
    assert handed.status_code == 200, handed.text
    response = await crm.get(
        "/api/audit/export", params={"entity_id": lead["id"]}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="audit.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["action"] for row in rows] == ["owner_changed", "created"]
    assert rows[0]["reason"] == '\'=HYPERLINK("http://evil")'  # never run as a formula
    assert json.loads(rows[0]["changes"]) == {"owner_id": [admin.sub, sub]}
    assert {row["entity_id"] for row in rows} == {lead["id"]}
    listed = (
        await crm.get("/api/audit", params={"entity_id": lead["id"]}, headers=admin.headers)
    ).json()["items"]
    assert [row["id"] for row in rows] == [item["id"] for item in listed]


@pytest.mark.parametrize("moment", ["0.5", "1700000000", "-3", "1e9"])
async def test_a_number_is_no_moment_to_filter_the_audit_by(
    crm: httpx.AsyncClient, api: Any, users: Users, moment: str
) -> None:
    admin = users.make(Role.ADMIN, teams=["t1"])
    for path in ("/api/audit", "/api/audit/export"):
        for name in ("since", "until"):
            refused = await crm.get(path, params={name: moment}, headers=admin.headers)
            api.assert_problem(refused, 422, f"query.{name}")
    accepted = await crm.get(
        "/api/audit", params={"since": "2026-03-02T10:00:00+01:00"}, headers=admin.headers
    )
    assert accepted.status_code == 200, accepted.text
