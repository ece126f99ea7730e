"""A lead's SLA due time: the automation service sets it through ``/internal/leads/{id}/sla``
(audited as ``svc:automation``), and clients may not write it while a policy applies; a note
may record a call."""

from typing import Any

import httpx
import pytest

from crm_service.models import outbox
from dev_identity.keystore import KeyStore
from pipedesk_common.auth import Role, ServiceTokenIssuer
from pipedesk_common.clock import SystemClock
from pipedesk_common.db import connect_raw
from pipedesk_common.events import decode_event
from pipedesk_testkit.identities import Users

from .conftest import CrmApi, assert_problem

pytestmark = pytest.mark.asyncio
DUE = "2026-03-04T15:00:00Z"


def token_of(identity: Any, service: str) -> dict[str, str]:
    store = KeyStore(identity.key_dir)
    issuer = ServiceTokenIssuer(service, store.service_key(service), clock=SystemClock())
    return {"Authorization": f"Bearer {issuer.token_for('crm')}"}


async def published(database_url: str, routing_key: str, lead_id: str) -> list[dict[str, Any]]:
    connection = await connect_raw(database_url)
    try:
        rows = await connection.fetch(
            f"SELECT body FROM crm.{outbox.name} WHERE routing_key = $1 ORDER BY id", routing_key
        )
    finally:
        await connection.close()
    found = [decode_event(bytes(row["body"])).data.model_dump(mode="json") for row in rows]
    return [data for data in found if data.get("id") == lead_id]


async def test_automation_sets_the_due_time_and_clients_may_not_while_a_policy_applies(
    crm: httpx.AsyncClient, api: CrmApi, users: Users, identity: Any, database_url: str
) -> None:
    rep = users.make(Role.REP, teams=["team-a"])
    stranger = users.other_org().make(Role.ADMIN)
    lead = await api.create("leads", rep, sla_due_at="2030-01-01T00:00:00Z")
    path = f"/internal/leads/{lead['id']}/sla"
    body = {"org_id": rep.principal.org_id, "sla_due_at": DUE, "managed": True}

    # Only the automation service may, for a lead of the org it names.
    assert_problem(await crm.put(path, json=body, headers=rep.headers), 401)
    assert_problem(await crm.put(path, json=body, headers=token_of(identity, "drive")), 403)
    elsewhere = {**body, "org_id": stranger.principal.org_id}
    assert_problem(
        await crm.put(path, json=elsewhere, headers=token_of(identity, "automation")), 404
    )
    bad = await crm.put(
        path, json={**body, "sla_due_at": "tomorrow"}, headers=token_of(identity, "automation")
    )
    assert_problem(bad, 422, "body.sla_due_at")

    written = await crm.put(path, json=body, headers=token_of(identity, "automation"))
    assert written.status_code == 200, written.text
    assert written.json()["sla_managed"] is True
    assert written.json()["version"] == 2
    again = await crm.put(path, json=body, headers=token_of(identity, "automation"))
    assert again.json()["version"] == 2  # nothing changed: no new version

    shown = (await crm.get(f"/api/leads/{lead['id']}", headers=rep.headers)).json()
    assert shown["sla_due_at"] == "2026-03-04T15:00:00Z"
    assert shown["sla_managed"] is True

    # The client's write is refused while the policy applies; its other fields still change.
    refused = await crm.patch(
        f"/api/leads/{lead['id']}", json={"sla_due_at": "2031-01-01T00:00:00Z"}, headers=rep.headers
    )
    assert_problem(refused, 422, "body.sla_due_at")
    ok = await crm.patch(f"/api/leads/{lead['id']}", json={"priority": "high"}, headers=rep.headers)
    assert ok.status_code == 200, ok.text

    [entry] = [
        row
        for row in await api.audit(database_url, lead["id"])
        if row["actor_id"] == "svc:automation"
    ]
    assert entry["changes"]["sla_due_at"][1].startswith("2026-03-04T15:00:00")
    assert entry["changes"]["sla_managed"] == [False, True]
    [updated, *_] = await published(database_url, "crm.lead.updated", lead["id"])
    assert updated["sla_managed"] is True
    assert set(updated["changed"]) >= {"sla_due_at"}

    # The policy no longer applies: the field is the client's again.
    released = await crm.put(
        path,
        json={**body, "sla_due_at": None, "managed": False},
        headers=token_of(identity, "automation"),
    )
    assert released.json() == {**released.json(), "sla_due_at": None, "sla_managed": False}
    mine = await crm.patch(
        f"/api/leads/{lead['id']}", json={"sla_due_at": "2031-01-01T00:00:00Z"}, headers=rep.headers
    )
    assert mine.status_code == 200, mine.text


async def test_a_note_may_record_a_call(
    crm: httpx.AsyncClient, api: CrmApi, users: Users, database_url: str
) -> None:
    rep = users.make(Role.REP, teams=["team-a"])
    lead = await api.create("leads", rep)
    call = await crm.post(
        f"/api/leads/{lead['id']}/notes",
        json={"body": "Called the buyer", "kind": "call"},
        headers=rep.headers,
    )
    assert call.status_code == 201, call.text
    assert call.json()["kind"] == "call"
    plain = await crm.post(
        f"/api/leads/{lead['id']}/notes", json={"body": "Thoughts"}, headers=rep.headers
    )
    assert plain.json()["kind"] == "note"
    bad = await crm.post(
        f"/api/leads/{lead['id']}/notes",
        json={"body": "x", "kind": "visit"},
        headers=rep.headers,
    )
    assert_problem(bad, 422, "body.kind")
    connection = await connect_raw(database_url)
    try:
        rows = await connection.fetch(
            "SELECT body FROM crm.outbox WHERE routing_key = 'crm.note.created' ORDER BY id"
        )
    finally:
        await connection.close()
    notes = [decode_event(bytes(row["body"])).data for row in rows]
    [event] = [note for note in notes if note.id == call.json()["id"]]
    assert event.kind == "call"  # type: ignore[attr-defined]
    assert event.timeline.title == "Call"  # type: ignore[attr-defined]
