"""Repair: each kind of hand-made change in Drive is found by a dry run, fixed by applying, and
a second dry run finds nothing; only admins repair, and a record they cannot see is 404."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio
DRIVE = "https://www.googleapis.com/auth/drive"
FOLDER = "application/vnd.google-apps.folder"


async def by_hand(
    stack: Any, user: ActingUser, method: str, path: str, **kwargs: Any
) -> dict[str, Any]:
    """A change made in Drive itself, as ``user``."""
    token = await stack.google_token(user, [DRIVE])
    async with httpx.AsyncClient(base_url=stack.google.emulator_url, timeout=10) as google:
        answer = await google.request(
            method, f"/drive/v3/{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
    answer.raise_for_status()
    return answer.json() if answer.content else {}


async def run_repair(
    service: Any, user: ActingUser, *, dry_run: bool, **record: str
) -> httpx.Response:
    answer: httpx.Response = await service.client.post(
        "/api/drive/repair", json={"dry_run": dry_run, **record}, headers=user.headers
    )
    return answer


async def test_each_drift_is_found_fixed_and_gone(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        org_id = admin.principal.org_id
        owner = users.make(Role.REP, teams=["t1"])
        (await stack.crm.get("/api/users", headers=owner.headers)).raise_for_status()
        root = (await service.client.get("/api/drive/root", headers=admin.headers)).json()
        leads_folder = root["type_folders"]["lead"]
        leads = {}
        folders = {}
        for case in ("deleted", "trashed", "moved", "renamed", "duplicated", "shared"):
            leads[case] = await stack.lead(owner, f"Lead {case}")
            folders[case] = (await stack.folder(service, owner, "lead", leads[case])).json()
        kept = await stack.upload(
            service.client, owner, "lead", leads["duplicated"], "kept.txt", b"kept"
        )
        assert kept.status_code == 201

        await by_hand(stack, admin, "DELETE", f"files/{folders['deleted']['google_id']}")
        await by_hand(
            stack,
            admin,
            "PATCH",
            f"files/{folders['trashed']['google_id']}",
            json={"trashed": True},
        )
        await by_hand(
            stack,
            admin,
            "PATCH",
            f"files/{folders['moved']['google_id']}",
            params={"addParents": root["root_google_id"], "removeParents": leads_folder},
            json={},
        )
        await by_hand(
            stack, admin, "PATCH", f"files/{folders['renamed']['google_id']}", json={"name": "x"}
        )
        duplicate = await by_hand(
            stack,
            admin,
            "POST",
            "files",
            json={
                "name": "Lead duplicated (copy)",
                "mimeType": FOLDER,
                "parents": [leads_folder],
                "appProperties": {"pipedesk_org": org_id, "pipedesk_lead": leads["duplicated"]},
            },
        )
        stray = await by_hand(
            stack,
            admin,
            "POST",
            "files",
            json={"name": "stray.txt", "parents": [duplicate["id"]]},
        )
        shared = folders["shared"]["google_id"]
        await by_hand(
            stack,
            admin,
            "POST",
            f"files/{shared}/permissions",
            params={"sendNotificationEmail": "false"},
            json={"type": "user", "role": "writer", "emailAddress": "eve@elsewhere.com"},
        )

        refused = await run_repair(service, owner, dry_run=True)
        assert refused.status_code == 403
        own_record = await run_repair(
            service, owner, dry_run=True, record_type="lead", record_id=leads["renamed"]
        )
        assert own_record.status_code == 403
        other_team = users.make(Role.REP, teams=["t2"])
        stranger = users.other_org().make(Role.ADMIN)
        for intruder in (other_team, stranger):
            hidden = await run_repair(
                service, intruder, dry_run=False, record_type="lead", record_id=leads["renamed"]
            )
            assert hidden.status_code == 404
        half = await run_repair(service, admin, dry_run=True, record_type="lead")
        assert half.status_code == 422

        assert (await service.run_job("drive.detect-drift"))["result"] >= 6
        metrics = (await service.client.get("/metrics")).text
        assert 'pipedesk_drive_drift{kind="merge"}' in metrics

        dry = await run_repair(service, admin, dry_run=True)
        assert dry.status_code == 200, dry.text
        found = {(a["record_id"], a["kind"]) for a in dry.json()["actions"]}
        expected = {
            (leads["deleted"], "recreate"),
            (leads["trashed"], "untrash"),
            (leads["moved"], "move"),
            (leads["renamed"], "rename"),
            (leads["duplicated"], "merge"),
            (leads["shared"], "share_removed"),
        }
        assert expected <= found
        one = await run_repair(
            service, admin, dry_run=True, record_type="lead", record_id=leads["renamed"]
        )
        assert [a["kind"] for a in one.json()["actions"]] == ["rename"]

        applied = await run_repair(service, admin, dry_run=False)
        assert applied.status_code == 200, applied.text
        assert {(a["record_id"], a["kind"]) for a in applied.json()["actions"]} == found
        again = await run_repair(service, admin, dry_run=True)
        assert again.json()["actions"] == []

        in_google = {f["id"]: f for f in await stack.google_files()}
        assert in_google[duplicate["id"]]["trashed"] is True
        documents = next(
            s["google_id"]
            for s in (await stack.folder(service, owner, "lead", leads["duplicated"])).json()[
                "subfolders"
            ]
            if s["name"] == "Documents"
        )
        assert in_google[stray["id"]]["parents"] == [documents]
        recreated = (await stack.folder(service, owner, "lead", leads["deleted"])).json()
        assert recreated["google_id"] != folders["deleted"]["google_id"]
        assert in_google[recreated["google_id"]]["trashed"] is False
        assert in_google[folders["moved"]["google_id"]]["parents"] == [leads_folder]
        grants = (await stack.google.admin("GET", f"/drive/files/{shared}/permissions")).json()
        assert "eve@elsewhere.com" not in {g.get("emailAddress") for g in grants}

        async def repaired() -> list[dict[str, Any]]:
            answer = await stack.crm.get(
                "/api/audit",
                params={"entity_id": leads["renamed"], "action": "folder_repaired"},
                headers=admin.headers,
            )
            items: list[dict[str, Any]] = answer.json()["items"]
            return items

        [entry] = await eventually(repaired)
        assert (entry["source"], entry["actor_id"]) == ("drive", admin.sub)
        assert list(entry["changes"]) == ["rename"]


async def test_a_repair_names_one_record_or_none_as_its_document_says(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        document = (await service.client.get("/openapi.json")).json()
        one_or_all = document["components"]["schemas"]["RepairRequest"]["anyOf"]
        assert one_or_all[1]["required"] == ["record_type", "record_id"]
        half = await service.client.post(
            "/api/drive/repair",
            json={"record_type": None, "record_id": "0193a5c2-7e4b-7c1d-9f3e-2b8d4a6c1e05"},
            headers=admin.headers,
        )
        assert half.status_code == 422, half.text
        every = await run_repair(service, admin, dry_run=True)
        assert every.status_code == 200, every.text
