"""Who may see and change a record's folder and files: every route answers 404 to another org's
user and to a rep of another team, before any Google call; a viewer reads but cannot upload."""

from __future__ import annotations

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio


async def test_other_teams_reps_and_other_orgs_get_404_and_google_is_not_asked(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP, teams=["t1"])
        other_team = users.make(Role.REP, teams=["t2"])
        stranger = users.other_org().make(Role.ADMIN)
        lead_id = await stack.lead(owner)
        company = await stack.crm.post(
            "/api/companies", json={"name": "Acme Inc"}, headers=owner.headers
        )
        company_id = company.json()["id"]
        file = (
            await stack.upload(service.client, owner, "lead", lead_id, "a.txt", b"secret")
        ).json()
        for record_type, record_id, intruders in (
            ("lead", lead_id, (other_team, stranger)),
            ("company", company_id, (stranger,)),
        ):
            base = f"/api/drive/records/{record_type}/{record_id}"
            for intruder in intruders:
                await stack.google.admin("DELETE", "/requests")
                for method, path in (
                    ("GET", f"{base}/folder"),
                    ("GET", f"{base}/files"),
                    ("GET", f"{base}/trash"),
                ):
                    refused = await service.client.request(method, path, headers=intruder.headers)
                    assert refused.status_code == 404, (record_type, method, path)
                uploaded = await stack.upload(
                    service.client, intruder, record_type, record_id, "x.txt", b"x"
                )
                assert uploaded.status_code == 404
                assert await stack.google.requests(api="drive.files.create") == []
        for intruder in (other_team, stranger):
            for method, path in (
                ("GET", f"/api/drive/files/{file['id']}"),
                ("GET", f"/api/drive/files/{file['id']}/content"),
                ("GET", f"/api/drive/files/{file['id']}/export"),
                ("PATCH", f"/api/drive/files/{file['id']}"),
                ("POST", f"/api/drive/files/{file['id']}/trash"),
                ("POST", f"/api/drive/files/{file['id']}/restore"),
                ("DELETE", f"/api/drive/files/{file['id']}"),
            ):
                refused = await service.client.request(
                    method,
                    path,
                    headers=intruder.headers,
                    **({"json": {"name": "mine.txt"}} if method == "PATCH" else {}),
                )
                assert refused.status_code == 404, (intruder.sub, method, path)
        company_folder = await stack.folder(service, owner, "company", company_id)
        assert company_folder.status_code == 200


async def test_a_viewer_reads_but_cannot_upload_and_only_admins_delete_for_good(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        owner = users.make(Role.REP, teams=["t1"])
        viewer = users.make(Role.VIEWER, teams=["t1"])
        lead_id = await stack.lead(owner)
        file = (await stack.upload(service.client, owner, "lead", lead_id, "a.txt", b"a")).json()

        listed = await service.client.get(
            f"/api/drive/records/lead/{lead_id}/files", headers=viewer.headers
        )
        assert [f["id"] for f in listed.json()["items"]] == [file["id"]]
        refused = await stack.upload(service.client, viewer, "lead", lead_id, "b.txt", b"b")
        assert refused.status_code == 403
        trash = await service.client.post(
            f"/api/drive/files/{file['id']}/trash", headers=viewer.headers
        )
        assert trash.status_code == 403

        by_owner = await service.client.delete(
            f"/api/drive/files/{file['id']}", headers=owner.headers
        )
        assert by_owner.status_code == 403
        by_admin = await service.client.delete(
            f"/api/drive/files/{file['id']}", headers=admin.headers
        )
        assert by_admin.status_code == 204
        assert file["google_id"] not in {f["id"] for f in await stack.google_files()}


async def test_only_an_admin_sets_the_root(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        rep = users.make(Role.REP)
        refused = await service.client.put("/api/drive/root", json={}, headers=rep.headers)
        assert refused.status_code == 403
        unset = await service.client.get("/api/drive/root", headers=rep.headers)
        assert unset.status_code == 409
        lead_id = await stack.lead(rep)
        folder = await stack.folder(service, rep, "lead", lead_id)
        assert folder.status_code == 409
        assert folder.json()["type"].endswith(":drive-not-configured")
