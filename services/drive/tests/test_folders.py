"""One folder per record: made once under concurrent first requests, found again by its
appProperties when our row is lost, and following its record (renamed, moved to Deals when the
lead is converted, trashed with it, restored with it)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio


async def test_concurrent_first_requests_make_one_folder(stack: Any, users: Users) -> None:
    async with stack.start() as service, stack.start() as second:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner, "Globex")
        answers = await asyncio.gather(
            *(stack.folder(instance, owner, "lead", lead_id) for instance in (service, second) * 5)
        )
        assert {answer.status_code for answer in answers} == {200}
        assert len({answer.json()["google_id"] for answer in answers}) == 1
        [folder] = await stack.record_folders(lead_id)
        assert folder["name"] == f"Globex · {lead_id[-8:]}"
        inside = [f for f in await stack.google_files() if folder["id"] in f["parents"]]
        assert sorted(f["name"] for f in inside) == ["Documents", "Email attachments"]
        assert (
            await stack.scalar(
                "SELECT count(*) FROM drive.record_folders WHERE record_id = :id", id=lead_id
            )
            == 1
        )


async def test_a_lost_row_finds_the_folder_again_by_its_app_properties(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        first = (await stack.folder(service, owner, "lead", lead_id)).json()
        await stack.execute("DELETE FROM drive.record_folders WHERE record_id = :id", id=lead_id)

        again = await stack.folder(service, owner, "lead", lead_id)

        assert again.status_code == 200
        assert again.json()["google_id"] == first["google_id"]
        assert [s["google_id"] for s in again.json()["subfolders"]] == [
            s["google_id"] for s in first["subfolders"]
        ]
        assert len(await stack.record_folders(lead_id)) == 1


async def folder_in_google(stack: Any, google_id: str) -> dict[str, Any]:
    return next(f for f in await stack.google_files() if f["id"] == google_id)


async def test_the_folder_follows_its_record(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        root = (await service.client.get("/api/drive/root", headers=admin.headers)).json()
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner, "Initech")
        folder = (await stack.folder(service, owner, "lead", lead_id)).json()
        crm, headers = stack.crm, owner.headers

        renamed = await crm.patch(
            f"/api/leads/{lead_id}", json={"title": "Initech 2"}, headers=headers
        )
        assert renamed.status_code == 200, renamed.text
        await eventually(
            lambda: folder_in_google(stack, folder["google_id"]),
            until=lambda f: f["name"] == f"Initech 2 · {lead_id[-8:]}",
        )

        converted = await crm.post(f"/api/leads/{lead_id}/convert", json={}, headers=headers)
        assert converted.status_code in (200, 201), converted.text
        deal_id = converted.json()["id"]
        moved = await eventually(
            lambda: folder_in_google(stack, folder["google_id"]),
            until=lambda f: f["parents"] == [root["type_folders"]["deal"]],
        )
        assert moved["appProperties"]["pipedesk_deal"] == deal_id
        assert moved["appProperties"]["pipedesk_lead"] == lead_id
        as_deal = await stack.folder(service, owner, "deal", deal_id)
        assert as_deal.json()["google_id"] == folder["google_id"]

        assert (await crm.delete(f"/api/deals/{deal_id}", headers=headers)).status_code == 204
        await eventually(
            lambda: folder_in_google(stack, folder["google_id"]), until=lambda f: f["trashed"]
        )
        gone = await stack.folder(service, owner, "deal", deal_id)
        assert gone.status_code == 404

        restored = await crm.post(f"/api/deals/{deal_id}/restore", headers=headers)
        assert restored.status_code == 200, restored.text
        await eventually(
            lambda: folder_in_google(stack, folder["google_id"]), until=lambda f: not f["trashed"]
        )
        assert len(await stack.record_folders(lead_id)) == 1


async def test_record_folders_in_a_shared_drive(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        admin = users.make(Role.ADMIN)
        await stack.connect(admin)
        token = await stack.google_token(admin, ["https://www.googleapis.com/auth/drive"])
        async with httpx.AsyncClient(timeout=10) as http:
            made = await http.post(
                f"{stack.google.emulator_url}/drive/v3/drives",
                params={"requestId": f"r-{admin.sub}"},
                json={"name": "PipeDesk records"},
                headers={"Authorization": f"Bearer {token}"},
            )
        shared = made.json()["id"]
        unknown = await service.client.put(
            "/api/drive/root", json={"shared_drive_id": "no-such-drive"}, headers=admin.headers
        )
        assert unknown.status_code == 404, unknown.text
        assert unknown.headers["content-type"] == "application/problem+json"
        documented = (await service.client.get("/openapi.json")).json()
        assert "404" in documented["paths"]["/api/drive/root"]["put"]["responses"]
        root = await service.client.put(
            "/api/drive/root", json={"shared_drive_id": shared}, headers=admin.headers
        )
        assert root.status_code == 200, root.text
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        folder = await stack.folder(service, owner, "lead", lead_id)
        assert folder.status_code == 200, folder.text
        [in_google] = await stack.record_folders(lead_id)
        assert in_google["driveId"] == shared
        uploaded = await stack.upload(service.client, owner, "lead", lead_id, "n.txt", b"shared")
        assert uploaded.status_code == 201, uploaded.text
        download = await service.client.get(
            f"/api/drive/files/{uploaded.json()['id']}/content", headers=owner.headers
        )
        assert download.content == b"shared"
        await stack.execute("DELETE FROM drive.record_folders WHERE record_id = :id", id=lead_id)
        again = await stack.folder(service, owner, "lead", lead_id)
        assert again.json()["google_id"] == folder.json()["google_id"]
