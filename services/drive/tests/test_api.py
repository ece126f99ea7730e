"""A record's folder and its files through the API: made once, uploaded, listed, downloaded,
renamed, trashed, restored and deleted."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio


async def test_a_record_folder_holds_uploads_that_download_again(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner, "Acme renewal")
        folder = await stack.folder(service, owner, "lead", lead_id)
        assert folder.status_code == 200, folder.text
        body = folder.json()
        assert body["name"] == f"Acme renewal · {lead_id[-8:]}"
        assert [s["name"] for s in body["subfolders"]] == ["Documents", "Email attachments"]

        uploaded = await stack.upload(service.client, owner, "lead", lead_id, "notes.txt", b"hi")
        assert uploaded.status_code == 201, uploaded.text
        file = uploaded.json()
        assert (file["name"], file["size"], file["subfolder"]) == ("notes.txt", 2, "Documents")

        listed = await service.client.get(
            f"/api/drive/records/lead/{lead_id}/files", headers=owner.headers
        )
        assert [f["id"] for f in listed.json()["items"]] == [file["id"]]
        download = await service.client.get(
            f"/api/drive/files/{file['id']}/content", headers=owner.headers
        )
        assert download.status_code == 200
        assert download.content == b"hi"
        assert download.headers["content-disposition"].startswith(
            'attachment; filename="notes.txt"'
        )
        assert await stack.fidelity_violations() == []


async def test_rename_trash_restore_and_paging(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        client, headers = service.client, owner.headers
        made = [
            (await stack.upload(client, owner, "lead", lead_id, f"f{n}.txt", b"n")).json()
            for n in range(3)
        ]
        renamed = await client.patch(
            f"/api/drive/files/{made[0]['id']}", json={"name": "Quote.txt"}, headers=headers
        )
        assert renamed.json()["name"] == "Quote.txt"
        assert {f["name"] for f in await stack.google_files()} >= {"Quote.txt", "f1.txt"}
        bad = await client.patch(
            f"/api/drive/files/{made[0]['id']}", json={"name": "a/b"}, headers=headers
        )
        assert bad.status_code == 422

        trashed = await client.post(f"/api/drive/files/{made[1]['id']}/trash", headers=headers)
        assert trashed.json()["trashed"] is True
        in_google = {f["id"]: f for f in await stack.google_files()}
        assert in_google[made[1]["google_id"]]["trashed"] is True
        files = f"/api/drive/records/lead/{lead_id}/files"
        first = (await client.get(files, params={"limit": 1}, headers=headers)).json()
        second = (
            await client.get(
                files, params={"limit": 1, "cursor": first["next_cursor"]}, headers=headers
            )
        ).json()
        assert [f["id"] for f in first["items"] + second["items"]] == [
            made[0]["id"],
            made[2]["id"],
        ]
        assert second["next_cursor"] is None
        trash = await client.get(f"/api/drive/records/lead/{lead_id}/trash", headers=headers)
        assert [f["id"] for f in trash.json()["items"]] == [made[1]["id"]]
        wrong = await client.get(
            files, params={"cursor": first["next_cursor"] + "x"}, headers=headers
        )
        assert wrong.status_code == 400

        restored = await client.post(f"/api/drive/files/{made[1]['id']}/restore", headers=headers)
        assert restored.json()["trashed"] is False
        assert (
            await client.get(f"/api/drive/records/lead/{lead_id}/trash", headers=headers)
        ).json()["items"] == []


async def test_a_folder_google_stored_but_did_not_confirm_is_made_once(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        await stack.google.admin(
            "POST",
            "/faults",
            json={
                "api_method": "drive.files.create",
                "status": 503,
                "after_store": True,
                "user": admin.principal.email,
                "count": 2,
            },
        )
        folder = await stack.folder(service, owner, "lead", lead_id)
        assert folder.status_code == 200, folder.text
        assert len(await stack.record_folders(lead_id)) == 1
        [documents] = [s for s in folder.json()["subfolders"] if s["name"] == "Documents"]
        siblings = [
            f
            for f in await stack.google_files()
            if folder.json()["google_id"] in f["parents"] and f["name"] == "Documents"
        ]
        assert [f["id"] for f in siblings] == [documents["google_id"]]


async def test_automation_saves_a_stream_once_per_key(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        path = f"/internal/records/lead/{lead_id}/files"
        params = {"name": "invoice.pdf", "org_id": owner.principal.org_id, "key": "rule-7:msg-1"}

        def headers(caller: str = "automation") -> dict[str, str]:
            token = stack.world.service_token(caller, "drive")
            return {"Content-Type": "application/pdf", "Authorization": f"Bearer {token}"}

        client = service.client
        first = await client.post(path, params=params, content=b"%PDF-1", headers=headers())
        assert first.status_code == 201, first.text
        assert first.json()["subfolder"] == "Email attachments"
        again = await client.post(path, params=params, content=b"%PDF-1", headers=headers())
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        assert [f["name"] for f in await stack.google_files()].count("invoice.pdf") == 1

        other_org = await client.post(
            path, params={**params, "org_id": "org-else"}, content=b"x", headers=headers()
        )
        assert other_org.status_code == 404
        not_allowed = await client.post(
            path, params=params, content=b"x", headers=headers("calendar")
        )
        assert not_allowed.status_code == 403
        user_token = await client.post(
            path, params=params, content=b"x", headers={**headers(), **owner.headers}
        )
        assert user_token.status_code == 401

        # What a rule asks before saving: the folder's files with the same content.
        md5 = hashlib.md5(b"%PDF-1", usedforsecurity=False).hexdigest()
        lookup = {"org_id": owner.principal.org_id, "md5": md5}
        same = await client.get(path, params=lookup, headers=headers())
        assert same.status_code == 200, same.text
        assert [item["id"] for item in same.json()["items"]] == [first.json()["id"]]
        other = {**lookup, "md5": hashlib.md5(b"other", usedforsecurity=False).hexdigest()}
        assert (await client.get(path, params=other, headers=headers())).json()["items"] == []
        elsewhere = await client.get(
            path, params={**lookup, "org_id": "org-else"}, headers=headers()
        )
        assert elsewhere.status_code == 404
        assert (await client.get(path, params=lookup, headers=headers("gmail"))).status_code == 403
        bad = await client.get(path, params={**lookup, "md5": "xyz"}, headers=headers())
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "query.md5"


async def test_an_upload_with_an_idempotency_key_stores_one_file(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        path = f"/api/drive/records/lead/{lead_id}/files"

        async def send(name: str, key: str | None) -> Any:
            headers = {**owner.headers, "Content-Type": "text/plain"}
            if key:
                headers["Idempotency-Key"] = key
            return await service.client.post(
                path, params={"name": name}, content=b"quote", headers=headers
            )

        await stack.google.admin(
            "POST",
            "/faults",
            json={
                "api_method": "drive.files.create",
                "status": 503,
                "after_store": True,
                "user": admin.principal.email,
            },
        )
        first = await send("quote.txt", "k-1")
        assert first.status_code == 201, first.text
        again = await send("quote.txt", "k-1")
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        assert [f["name"] for f in await stack.google_files()].count("quote.txt") == 1
        other = await send("other.txt", "k-1")
        assert other.status_code == 422

        await stack.google.admin(
            "POST",
            "/faults",
            json={
                "api_method": "drive.files.create",
                "status": 403,
                "reason": "storageQuotaExceeded",
                "user": admin.principal.email,
            },
        )
        refused = await send("full.txt", None)
        assert refused.status_code == 403
        pending = await stack.scalar("SELECT count(*) FROM drive.files WHERE size IS NULL")
        assert pending == 0


async def test_a_file_moves_to_another_record_only_with_access_to_both(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP, teams=["t1"])
        other = users.make(Role.REP, teams=["t2"])
        lead_id = await stack.lead(owner, "From")
        target_id = await stack.lead(owner, "To")
        theirs = await stack.lead(other, "Theirs")
        file = (await stack.upload(service.client, owner, "lead", lead_id, "a.txt", b"a")).json()
        path = f"/api/drive/files/{file['id']}/move"

        refused = await service.client.post(
            path, json={"record_type": "lead", "record_id": theirs}, headers=owner.headers
        )
        assert refused.status_code == 404
        moved = await service.client.post(
            path,
            json={"record_type": "lead", "record_id": target_id, "subfolder": "Email attachments"},
            headers=owner.headers,
        )
        assert moved.status_code == 200, moved.text
        target = (await stack.folder(service, owner, "lead", target_id)).json()
        attachments = next(
            s["google_id"] for s in target["subfolders"] if s["name"] == "Email attachments"
        )
        in_google = {f["id"]: f for f in await stack.google_files()}
        assert in_google[file["google_id"]]["parents"] == [attachments]
        listed = await service.client.get(
            f"/api/drive/records/lead/{target_id}/files", headers=owner.headers
        )
        assert [f["id"] for f in listed.json()["items"]] == [file["id"]]
        by_other = await service.client.post(
            path, json={"record_type": "lead", "record_id": theirs}, headers=other.headers
        )
        assert by_other.status_code == 404


async def test_the_gmail_service_reads_a_file_for_a_user_who_may_read_its_record(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP, teams=["t1"])
        viewer = users.make(Role.VIEWER, teams=["t1"])
        other_team = users.make(Role.REP, teams=["t2"])
        stranger = users.other_org().make(Role.ADMIN)
        lead_id = await stack.lead(owner)
        uploaded = await stack.upload(
            service.client, owner, "lead", lead_id, "quote notes.txt", b"\x00quote\xff"
        )
        path = f"/internal/files/{uploaded.json()['id']}/content"

        def headers(user: Any | None, caller: str = "gmail") -> dict[str, str]:
            token = stack.world.service_token(caller, "drive")
            found = {"Authorization": f"Bearer {token}"}
            if user is not None:
                found["X-Acting-User-Token"] = user.token
            return found

        for reader in (owner, viewer):
            answer = await service.client.get(path, headers=headers(reader))
            assert answer.status_code == 200, answer.text
            assert answer.content == b"\x00quote\xff"
            assert answer.headers["x-file-name"] == "quote%20notes.txt"
            assert answer.headers["content-type"].startswith("text/plain")
        for outsider in (other_team, stranger):
            assert (await service.client.get(path, headers=headers(outsider))).status_code == 404
        assert (await service.client.get(path, headers=headers(None))).status_code == 401
        refused = await service.client.get(path, headers=headers(owner, "automation"))
        assert refused.status_code == 403
        as_user = await service.client.get(
            path, headers={**owner.headers, "X-Acting-User-Token": owner.token}
        )
        assert as_user.status_code == 401


async def test_the_document_names_the_configured_subfolders_and_another_is_refused(
    stack: Any, users: Users
) -> None:
    async with stack.start(subfolders=["Contracts", "Invoices"]) as service:
        document = (await service.client.get("/openapi.json")).json()
        upload = document["paths"]["/api/drive/records/{record_type}/{record_id}/files"]["post"]
        (subfolder,) = [p for p in upload["parameters"] if p["name"] == "subfolder"]
        assert subfolder["schema"]["enum"] == ["Contracts", "Invoices"]
        move = document["components"]["schemas"]["FileMove"]["properties"]["subfolder"]
        assert move["enum"] == ["Contracts", "Invoices"]

        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner, "Acme renewal")
        refused = await stack.upload(
            service.client, owner, "lead", lead_id, "a.txt", b"a", subfolder="Documents"
        )
        assert refused.status_code == 422, refused.text
        assert "subfolder" in refused.text
        kept = await stack.upload(
            service.client, owner, "lead", lead_id, "a.txt", b"a", subfolder="Invoices"
        )
        assert kept.status_code == 201, kept.text
