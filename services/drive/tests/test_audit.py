"""Every Drive action taken through the API is in the org's one audit log (CRM's ``/api/audit``)
for its record, with actor and before/after, once each, and without a timeline item of its own."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from crm_service.models import outbox as crm_outbox
from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.outbox import published
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio


async def drive_entries(stack: Any, admin: ActingUser, lead_id: str) -> list[dict[str, Any]]:
    answer = await stack.crm.get(
        "/api/audit",
        params={"entity_type": "lead", "entity_id": lead_id, "limit": 100},
        headers=admin.headers,
    )
    answer.raise_for_status()
    return [entry for entry in answer.json()["items"] if entry["source"] == "drive"]


async def test_drive_actions_appear_in_the_records_audit_once_each(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        (await stack.crm.get("/api/users", headers=owner.headers)).raise_for_status()
        lead_id = await stack.lead(owner, "Acme")
        other_lead = await stack.lead(owner, "Globex")
        client, headers = service.client, owner.headers
        file = (await stack.upload(client, owner, "lead", lead_id, "a.txt", b"abc")).json()
        files = f"/api/drive/files/{file['id']}"
        await client.patch(files, json={"name": "quote.txt"}, headers=headers)
        await client.post(f"{files}/trash", headers=headers)
        await client.post(f"{files}/restore", headers=headers)
        moved = await client.post(
            f"{files}/move", json={"record_type": "lead", "record_id": other_lead}, headers=headers
        )
        assert moved.status_code == 200, moved.text
        await client.put(
            "/api/drive/share-domains", json={"domains": ["client.org"]}, headers=admin.headers
        )
        shares = f"/api/drive/records/lead/{lead_id}/shares"
        share = {"email": "carla@client.org", "role": "reader", "notify": False}
        assert (await client.post(shares, json=share, headers=headers)).status_code == 201
        gone = await client.delete(f"{shares}/carla@client.org", headers=headers)
        assert gone.status_code == 204
        deleted = await client.delete(files, headers=admin.headers)
        assert deleted.status_code == 204

        expected = {
            "file_uploaded", "file_renamed", "file_trashed", "file_restored", "file_moved",
            "share_added", "share_removed",
        }  # fmt: skip
        entries = await eventually(
            lambda: drive_entries(stack, admin, lead_id),
            until=lambda found: {e["action"] for e in found} >= expected,
        )
        assert Counter(e["action"] for e in entries) == Counter(expected)
        by_action = {e["action"]: e for e in entries}
        renamed = by_action["file_renamed"]
        assert renamed["actor_id"] == owner.sub
        assert renamed["changes"] == {"name": ["a.txt", "quote.txt"]}
        assert renamed["file_id"] == file["google_id"]
        assert by_action["file_trashed"]["changes"] == {"trashed": [False, True]}
        assert by_action["file_moved"]["changes"]["record"] == [
            f"lead:{lead_id}",
            f"lead:{other_lead}",
        ]
        assert by_action["share_added"]["changes"]["share:carla@client.org"] == [None, "reader"]
        on_other = await eventually(
            lambda: drive_entries(stack, admin, other_lead),
            until=lambda found: {e["action"] for e in found} >= {"file_moved", "file_deleted"},
        )
        deleted_entry = next(e for e in on_other if e["action"] == "file_deleted")
        assert deleted_entry["actor_id"] == admin.sub
        assert deleted_entry["changes"]["name"] == ["quote.txt", None]

        # CRM stores them; it publishes no audit item of its own for them.
        for entry in entries:
            as_crm_item = await published(
                stack.database_url, crm_outbox, "crm.audit.recorded", entry["id"]
            )
            assert as_crm_item == []

        reader = users.make(Role.REP)
        refused = await stack.crm.get(
            "/api/audit", params={"entity_id": lead_id}, headers=reader.headers
        )
        assert refused.status_code == 403
        stranger = users.other_org().make(Role.ADMIN)
        theirs = await stack.crm.get(
            "/api/audit", params={"entity_id": lead_id}, headers=stranger.headers
        )
        assert theirs.json()["items"] == []


async def test_shares_that_follow_an_owner_change_are_audited_under_its_entry(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        owner = users.make(Role.REP, teams=["t1"])
        successor = users.make(Role.REP, teams=["t1"])
        for user in (owner, successor):
            (await stack.crm.get("/api/users", headers=user.headers)).raise_for_status()
        lead_id = await stack.lead(owner, "Acme")
        folder = (await stack.folder(service, owner, "lead", lead_id)).json()

        changed = await stack.crm.post(
            f"/api/leads/{lead_id}/change-owner",
            json={"new_owner_id": successor.sub},
            headers=admin.headers,
        )
        assert changed.status_code == 200, changed.text
        shares = await eventually(
            lambda: drive_entries(stack, admin, lead_id),
            until=lambda found: len(found) >= 2,
        )
        answer = await stack.crm.get(
            "/api/audit",
            params={"entity_type": "lead", "entity_id": lead_id, "action": "owner_changed"},
            headers=admin.headers,
        )
        [owner_changed] = answer.json()["items"]
        assert owner_changed["source"] == "crm"
        assert owner_changed["caused_by"] is None
        assert sorted((e["action"], e["changes"]) for e in shares) == [
            ("share_added", {f"share:{successor.principal.email}": [None, "writer"]}),
            ("share_removed", {f"share:{owner.principal.email}": ["writer", None]}),
        ]
        for entry in shares:
            assert entry["caused_by"] == owner_changed["id"]
            assert entry["actor_id"] == admin.sub
            assert entry["file_id"] == folder["google_id"]

        # A member added: its share carries the member entry's id.
        watcher = users.make(Role.REP, teams=["t1"])
        (await stack.crm.get("/api/users", headers=watcher.headers)).raise_for_status()
        put = await stack.crm.put(
            f"/api/leads/{lead_id}/members/{watcher.sub}",
            json={"role": "follower"},
            headers=successor.headers,
        )
        assert put.status_code == 200, put.text
        entries = await eventually(
            lambda: drive_entries(stack, admin, lead_id),
            until=lambda found: len(found) >= 3,
        )
        [followed] = [e for e in entries if f"share:{watcher.principal.email}" in e["changes"]]
        added = await stack.crm.get(
            "/api/audit",
            params={"entity_type": "lead", "entity_id": lead_id, "action": "member_added"},
            headers=admin.headers,
        )
        [member_added] = added.json()["items"]
        assert followed["caused_by"] == member_added["id"]
        assert followed["actor_id"] == successor.sub
        assert followed["changes"] == {f"share:{watcher.principal.email}": [None, "reader"]}
