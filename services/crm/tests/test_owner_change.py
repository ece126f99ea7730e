"""Handing a lead or deal to a new owner: each role's rules, its audit and events, atomically."""

from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import create_async_engine

from crm_service.app import build_app
from crm_service.models import outbox
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_common.events import decode_event
from pipedesk_common.events.crm import LeadAccessChanged, LeadOwnerChanged
from pipedesk_testkit.identities import ActingUser, Users

pytestmark = pytest.mark.asyncio


async def join(crm: httpx.AsyncClient, *people: ActingUser) -> None:
    """Put users in the directory the way it happens in production: by their first request."""
    for person in people:
        assert (await crm.get("/api/users", params={"limit": 1}, headers=person.headers)).is_success


async def change(
    crm: httpx.AsyncClient, actor: ActingUser, plural: str, record_id: str, **body: Any
) -> httpx.Response:
    return await crm.post(
        f"/api/{plural}/{record_id}/change-owner", json=body, headers=actor.headers
    )


@pytest.mark.parametrize("plural", ["leads", "deals"])
async def test_each_role_hands_over_records_by_its_own_rules(
    crm: httpx.AsyncClient, api: Any, users: Users, plural: str
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    teammate = users.make(Role.REP, teams=["t1"])
    stranger = users.make(Role.REP, teams=["t2"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    viewer = users.make(Role.VIEWER, teams=["t1"])
    admin = users.make(Role.ADMIN, teams=[])
    await join(crm, rep, teammate, stranger, manager, viewer, admin)
    record = await api.create(plural, rep)
    rid = record["id"]
    # a rep hands over only what they own, to someone of their own team
    api.assert_problem(
        await change(crm, rep, plural, rid, new_owner_id=stranger.sub), 422, "body.new_owner_id"
    )
    api.assert_problem(await change(crm, viewer, plural, rid, new_owner_id=teammate.sub), 403)
    api.assert_problem(
        await change(crm, rep, plural, rid, new_owner_id=viewer.sub), 422, "body.new_owner_id"
    )
    api.assert_problem(await change(crm, rep, plural, rid, new_owner_id=rep.sub), 409)
    handed = await change(crm, rep, plural, rid, new_owner_id=teammate.sub, reason="vacation")
    assert handed.status_code == 200, handed.text
    assert handed.json()["owner_id"] == teammate.sub
    assert handed.json()["version"] == 2
    # the former owner lost access (they were not kept as a member)
    api.assert_problem(await crm.get(f"/api/{plural}/{rid}", headers=rep.headers), 404)
    # a manager: their teams' records, to users of their teams
    api.assert_problem(
        await change(crm, manager, plural, rid, new_owner_id=stranger.sub), 422, "body.new_owner_id"
    )
    assert (await change(crm, manager, plural, rid, new_owner_id=rep.sub)).status_code == 200
    elsewhere = await api.create(plural, stranger)
    api.assert_problem(
        await change(crm, manager, plural, elsewhere["id"], new_owner_id=rep.sub), 404
    )
    # an admin: any record of the org, to any user of the org
    assert (
        await change(crm, admin, plural, elsewhere["id"], new_owner_id=rep.sub)
    ).status_code == 200
    # the new owner must be in the directory of the same org, and the answer reveals nothing
    outsider = users.other_org().make(Role.REP, teams=["t1"])
    await join(crm, outsider)
    unknown = await change(crm, admin, plural, rid, new_owner_id="nobody-at-all")
    foreign = await change(crm, admin, plural, rid, new_owner_id=outsider.sub)
    assert (
        api.assert_problem(unknown, 422, "body.new_owner_id")["detail"]
        == api.assert_problem(foreign, 422, "body.new_owner_id")["detail"]
    )
    api.assert_problem(await change(crm, outsider, plural, rid, new_owner_id=rep.sub), 404)
    for bad, field in (
        ({}, "body.new_owner_id"),
        ({"new_owner_id": rep.sub, "reason": "x" * 1001}, "body.reason"),
        (
            {"new_owner_id": rep.sub, "keep_previous_owner_as_member": "maybe"},
            "body.keep_previous_owner_as_member",
        ),
        ({"new_owner_id": rep.sub, "owner_id": "x"}, "body.owner_id"),
    ):
        api.assert_problem(
            await crm.post(f"/api/{plural}/{rid}/change-owner", json=bad, headers=admin.headers),
            422,
            field,
        )


async def test_owner_change_writes_owner_membership_audit_and_events_together(
    crm: httpx.AsyncClient, api: Any, users: Users, database_url: str
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    heir = users.make(Role.REP, teams=["t1"])
    await join(crm, rep, heir)
    lead = await api.create("leads", rep)
    await crm.put(
        f"/api/leads/{lead['id']}/members/{heir.sub}",
        json={"role": "follower"},
        headers=rep.headers,
    )
    handed = await change(
        crm,
        rep,
        "leads",
        lead["id"],
        new_owner_id=heir.sub,
        reason="territory",
        keep_previous_owner_as_member=True,
    )
    assert handed.status_code == 200, handed.text
    members = (await crm.get(f"/api/leads/{lead['id']}/members", headers=heir.headers)).json()[
        "items"
    ]
    assert [(m["user_id"], m["role"]) for m in members] == [(rep.sub, "collaborator")]
    assert (
        await crm.patch(
            f"/api/leads/{lead['id']}", json={"title": "still mine"}, headers=rep.headers
        )
    ).is_success
    rows = await api.audit(database_url, lead["id"])
    owner_rows = [row for row in rows if row["action"] == "owner_changed"]
    assert len(owner_rows) == 1
    assert owner_rows[0]["changes"] == {"owner_id": [rep.sub, heir.sub]}
    assert owner_rows[0]["reason"] == "territory"
    same_request = [row for row in rows if row["request_id"] == owner_rows[0]["request_id"]]
    assert sorted(row["action"] for row in same_request) == [
        "member_added",
        "member_removed",
        "owner_changed",
    ]
    events = await _events_of(database_url, lead["id"])
    owner_events = [data for data in events if isinstance(data, LeadOwnerChanged)]
    assert len(owner_events) == 1
    owner_event = owner_events[0]
    assert (owner_event.previous_owner_id, owner_event.new_owner_id, owner_event.reason) == (
        rep.sub,
        heir.sub,
        "territory",
    )
    assert owner_event.previous_owner_kept_as == "collaborator"
    assert owner_event.version == 3
    access = [data for data in events if isinstance(data, LeadAccessChanged)]
    latest = max(access, key=lambda data: data.version)
    assert [data.version for data in access] == [1, 2, 3]  # the later edit leaves access alone
    assert (latest.owner_id, latest.members) == (heir.sub, {rep.sub: "collaborator"})


async def _events_of(database_url: str, record_id: str) -> list[Any]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            bodies = (
                await connection.execute(select(outbox.c.body).order_by(outbox.c.id))
            ).scalars()
            decoded = [decode_event(body).data for body in bodies]
    finally:
        await engine.dispose()
    return [data for data in decoded if getattr(data, "id", None) == record_id]


async def test_a_failure_after_the_audit_insert_leaves_record_audit_and_events_unchanged(
    service_env: dict[str, str], api: Any, users: Users, database_url: str
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    heir = users.make(Role.REP, teams=["t1"])
    app = build_app(CrmSettings(**service_env))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://crm") as crm:
            await join(crm, rep, heir)
            lead = (
                await crm.post("/api/leads", json={"title": "Acme"}, headers=rep.headers)
            ).json()
            before_rows = await api.audit(database_url, lead["id"])
            before_events = await _count_outbox(database_url)
            sync_engine = app.state.context.engine.sync_engine
            inserted: list[str] = []

            def fail_after_audit_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                if statement.lstrip().upper().startswith("INSERT INTO CRM.AUDIT_LOG"):
                    inserted.append(statement)
                    raise RuntimeError("injected failure after the audit insert")

            event.listen(sync_engine, "after_cursor_execute", fail_after_audit_insert)
            try:
                failed = await change(
                    crm,
                    rep,
                    "leads",
                    lead["id"],
                    new_owner_id=heir.sub,
                    keep_previous_owner_as_member=True,
                )
            finally:
                event.remove(sync_engine, "after_cursor_execute", fail_after_audit_insert)
            assert failed.status_code == 500
            assert failed.headers["content-type"] == "application/problem+json"
            assert inserted, "the failure was injected after the audit row was written"
            after = (await crm.get(f"/api/leads/{lead['id']}", headers=rep.headers)).json()
            assert after == lead
            members = (
                await crm.get(f"/api/leads/{lead['id']}/members", headers=rep.headers)
            ).json()
            assert members == {"items": [], "next_cursor": None}
    assert await api.audit(database_url, lead["id"]) == before_rows
    assert await _count_outbox(database_url) == before_events + 0
    assert not [
        e for e in await _events_of(database_url, lead["id"]) if isinstance(e, LeadOwnerChanged)
    ]


async def _count_outbox(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(select(func.count()).select_from(outbox))
    finally:
        await engine.dispose()
    return int(count or 0)
