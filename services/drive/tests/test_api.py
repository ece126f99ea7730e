"""A record's folder and its files through the API: made once, uploaded, listed, downloaded,
renamed, trashed, restored and deleted."""

from __future__ import annotations

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
