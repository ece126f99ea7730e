"""The file index once the Google account holding the org's My Drive root disconnects Google
Drive follows the org's ``on_disconnect`` rule: kept as last seen (the default), or removed from
PipeDesk, each file announced ``drive.file.deleted`` with its timeline status ``removed``.
Another user's disconnect, and another org's, leave the files where they are."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio
PATH = "/api/drive/on-disconnect"


async def disconnect_drive(stack: Any, user: ActingUser) -> None:
    async with httpx.AsyncClient(base_url=stack.google.accounts_url, timeout=30) as accounts:
        gone = await accounts.delete("/api/accounts/google/products/drive", headers=user.headers)
    assert gone.status_code == 204, gone.text


async def files_of(stack: Any, org_id: str) -> int:
    count: int = await stack.scalar(
        "SELECT count(*) FROM drive.files WHERE org_id = :org", org=org_id
    )
    return count


async def upload(stack: Any, service: Any, owner: ActingUser, name: str) -> dict[str, Any]:
    lead_id = await stack.lead(owner, name)
    uploaded = await stack.upload(service.client, owner, "lead", lead_id, f"{name}.txt", b"hi")
    assert uploaded.status_code == 201, uploaded.text
    file: dict[str, Any] = uploaded.json()
    # Drive's change log, read after the upload, is what announces the file.
    await eventually(lambda: stack.published("drive.file.created", file["google_id"]))
    return file


async def test_the_root_holders_disconnect_keeps_or_removes_the_file_index_as_the_org_says(
    stack: Any, users: Users
) -> None:
    elsewhere_users = users.other_org()
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        elsewhere_admin = await stack.admin_with_root(service, elsewhere_users)
        rep = users.make(Role.REP)
        await stack.connect(rep)
        elsewhere_rep = elsewhere_users.make(Role.REP)
        ours = [await upload(stack, service, rep, name) for name in ("Acme", "Globex")]
        theirs = await upload(stack, service, elsewhere_rep, "Initech")
        org, elsewhere_org = admin.principal.org_id, elsewhere_admin.principal.org_id

        # Only an admin sets the rule, for their own org; a bad one names the field.
        root = await service.client.get("/api/drive/root", headers=admin.headers)
        assert root.json()["on_disconnect"] == "keep_metadata"
        refused = await service.client.put(
            PATH, json={"on_disconnect": "remove"}, headers=rep.headers
        )
        assert refused.status_code == 403
        bad = await service.client.put(PATH, json={"on_disconnect": "wipe"}, headers=admin.headers)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body.on_disconnect"
        answer = await service.client.put(
            PATH, json={"on_disconnect": "remove"}, headers=admin.headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["on_disconnect"] == "remove"
        other = await service.client.get("/api/drive/root", headers=elsewhere_admin.headers)
        assert other.json()["on_disconnect"] == "keep_metadata"

        # A rep's Drive holds none of the org's files: their disconnect removes nothing.
        await disconnect_drive(stack, rep)
        await eventually(
            lambda: stack.health(rep), until=lambda h: h.get("state") == "needs_reconnect"
        )
        assert await files_of(stack, org) == 2

        # Another org's root holder disconnects under the default rule: its files stay.
        await disconnect_drive(stack, elsewhere_admin)
        await eventually(
            lambda: stack.health(elsewhere_admin),
            until=lambda h: h.get("state") == "needs_reconnect",
        )
        assert await files_of(stack, elsewhere_org) == 1

        # The root's holder disconnects: the org's file index leaves PipeDesk and every timeline.
        await disconnect_drive(stack, admin)
        await eventually(lambda: files_of(stack, org), until=lambda count: count == 0)
        for file in ours:
            [removed] = await stack.published("drive.file.deleted", file["google_id"])
            assert removed["timeline"]["status"] == "removed"
            assert removed["timeline"]["title"] == "(removed)"
            assert removed["timeline"]["summary"] is None
            [created] = await stack.published("drive.file.created", file["google_id"])
            assert removed["version"] > created["version"]
        assert await files_of(stack, elsewhere_org) == 1
        assert await stack.published("drive.file.deleted", theirs["google_id"]) == []
