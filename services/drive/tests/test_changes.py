"""Drive's change log onto the records' timelines: a file someone adds in Drive itself reaches
the lead through push → changes, and the org's changes channel is renewed before it expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_common.clock import ManualClock
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio
DRIVE = "https://www.googleapis.com/auth/drive"


async def add_in_drive(
    stack: Any, user: ActingUser, parent: str, name: str, data: bytes
) -> dict[str, Any]:
    """``user`` adds a file in Drive itself (not through PipeDesk)."""
    token = await stack.google_token(user, [DRIVE])
    boundary = "part"
    body = (
        (
            f'--{boundary}\r\nContent-Type: application/json\r\n\r\n{{"name": "{name}", '
            f'"parents": ["{parent}"]}}\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--".encode()
    )
    async with httpx.AsyncClient(base_url=stack.google.emulator_url, timeout=10) as google:
        answer = await google.post(
            "/upload/drive/v3/files",
            params={"uploadType": "multipart", "supportsAllDrives": "true"},
            content=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/related; boundary={boundary}",
            },
        )
    answer.raise_for_status()
    made: dict[str, Any] = answer.json()
    return made


async def changes_channels(stack: Any, admin: ActingUser) -> list[dict[str, Any]]:
    """The changes channels of the account holding the org's folders."""
    found = (await stack.google.admin("GET", "/drive/channels")).json()
    return [
        c
        for c in found
        if c["watched"].get("kind") == "changes" and c["owner"] == admin.principal.email
    ]


async def test_a_file_added_in_drive_reaches_the_leads_timeline_through_push(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        [channel] = await changes_channels(stack, admin)
        owner = users.make(Role.REP)
        (await stack.crm.get("/api/users", headers=owner.headers)).raise_for_status()
        lead_id = await stack.lead(owner, "Acme")
        folder = (await stack.folder(service, owner, "lead", lead_id)).json()
        documents = next(s["google_id"] for s in folder["subfolders"] if s["name"] == "Documents")

        added = await add_in_drive(stack, owner, documents, "brief.txt", b"from Drive")
        created = await eventually(lambda: stack.published("drive.file.created", added["id"]))
        [event] = created
        assert event["modified_by"] == owner.principal.email
        assert event["record"] == {"type": "lead", "id": lead_id}
        timeline = event["timeline"]
        assert timeline["kind"] == "file"
        assert timeline["title"] == "brief.txt"
        assert timeline["links"] == [{"type": "lead", "id": lead_id}]
        assert timeline["source"]["url"] == event["web_view_link"]
        assert "10 bytes" in timeline["summary"]
        assert owner.principal.email in timeline["summary"]
        listed = await service.client.get(
            f"/api/drive/records/lead/{lead_id}/files", headers=owner.headers
        )
        assert "brief.txt" in [f["name"] for f in listed.json()["items"]]
        deliveries = (await stack.google.admin("GET", "/drive/deliveries")).json()["deliveries"]
        to_service = [d for d in deliveries if d["channel_id"] == channel["id"]]
        assert {d["status_code"] for d in to_service} == {200}

        # A trash in Drive, then a catch-up read with no notification, announce it once.
        token = await stack.google_token(owner, [DRIVE])
        async with httpx.AsyncClient(base_url=stack.google.emulator_url, timeout=10) as google:
            trashed = await google.patch(
                f"/drive/v3/files/{added['id']}",
                json={"trashed": True},
                headers={"Authorization": f"Bearer {token}"},
            )
            trashed.raise_for_status()
        await eventually(lambda: stack.published("drive.file.trashed", added["id"]))
        await service.run_job("drive.read-changes")
        assert len(await stack.published("drive.file.trashed", added["id"])) == 1
        assert len(await stack.published("drive.file.created", added["id"])) == 1

        forged = await service.client.post(
            "/webhooks/google/drive",
            headers={
                "X-Goog-Channel-ID": channel["id"],
                "X-Goog-Channel-Token": "forged",
                "X-Goog-Resource-ID": channel["resource_id"],
                "X-Goog-Resource-State": "change",
            },
        )
        assert forged.status_code == 401


async def emulator_now(stack: Any) -> datetime:
    answer = await stack.google.admin("GET", "/clock")
    return datetime.fromisoformat(answer.json()["now"].replace("Z", "+00:00")).astimezone(UTC)


async def test_the_changes_channel_is_renewed_before_its_own_expiry(
    stack: Any, users: Users
) -> None:
    clock = ManualClock(await emulator_now(stack))
    moved = timedelta(0)

    async def advance(delta: timedelta) -> None:
        nonlocal moved
        clock.advance(delta)
        await stack.google.admin("POST", "/clock", json={"advance_seconds": delta.total_seconds()})
        moved += delta

    try:
        async with stack.start(
            clock, channel_ttl_seconds=3600, channel_renew_before_seconds=600
        ) as service:
            admin = await stack.admin_with_root(service, users)
            [old] = await changes_channels(stack, admin)
            await advance(timedelta(minutes=40))
            assert (await service.run_job("drive.renew-channels"))["result"] == 0
            await advance(timedelta(minutes=15))
            assert (await service.run_job("drive.renew-channels"))["result"] == 1
            await advance(timedelta(minutes=10))  # the old channel's own expiry has passed
            channels = {c["id"]: c for c in await changes_channels(stack, admin)}
            assert channels[old["id"]]["stopped"] is True
            live = [c for c in channels.values() if not c["stopped"]]
            assert len(live) == 1
            assert live[0]["expired"] is False
    finally:
        await stack.google.admin("POST", "/clock", json={"advance_seconds": -moved.total_seconds()})


async def test_a_file_uploaded_then_trashed_through_pipedesk_is_announced_once_for_each(
    stack: Any, users: Users
) -> None:
    """The upload's own answer announces the file, whether or not the change log was read while
    the upload was under way (when it skips the file); a later change through PipeDesk is then
    announced as what it is, never as the file's creation again."""
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner, "Acme")
        uploaded = await stack.upload(service.client, owner, "lead", lead_id, "quote.txt", b"hi")
        assert uploaded.status_code == 201, uploaded.text
        file = uploaded.json()
        # Announced in the upload's transaction, not only once the change log is read.
        [created] = await stack.published("drive.file.created", file["google_id"])
        assert created["timeline"]["title"] == "quote.txt"
        await service.run_job("drive.read-changes")
        assert len(await stack.published("drive.file.created", file["google_id"])) == 1

        renamed = await service.client.patch(
            f"/api/drive/files/{file['id']}", json={"name": "quote v2.txt"}, headers=owner.headers
        )
        assert renamed.status_code == 200, renamed.text
        trashed = await service.client.post(
            f"/api/drive/files/{file['id']}/trash", headers=owner.headers
        )
        assert trashed.status_code == 200, trashed.text
        [gone] = await eventually(lambda: stack.published("drive.file.trashed", file["google_id"]))
        assert gone["timeline"]["status"] == "trashed"
        assert gone["version"] > created["version"]
        await service.run_job("drive.read-changes")
        assert len(await stack.published("drive.file.created", file["google_id"])) == 1
        assert len(await stack.published("drive.file.trashed", file["google_id"])) == 1
