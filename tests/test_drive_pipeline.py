"""Files reach record timelines: a file someone adds in Drive itself, inside a lead's folder, is
read through push → changes, announced as ``drive.file.created`` and shown on the lead's timeline
by the timeline service (name, link, who added it); another team's rep and another org see
nothing."""

from typing import Any

import httpx
import pytest

from drive_service.app import build_app as build_drive
from drive_service.models import TABLES
from drive_service.settings import WEBHOOK_PATH, DriveSettings
from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.service import ServiceUnderTest, World
from pipedesk_testkit.waiting import eventually

# Each starts the timeline and waits for its events: none of earlier tests' may be ahead of them.
pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]
DRIVE = "https://www.googleapis.com/auth/drive"


async def add_in_drive(
    drive: ServiceUnderTest, user: ActingUser, parent: str, name: str, data: bytes
) -> dict[str, Any]:
    """``user`` uploads a file with Drive's own API, not through PipeDesk."""
    token = await drive.google_token(user, [DRIVE])
    meta = f'{{"name": "{name}", "parents": ["{parent}"]}}'
    body = (
        (
            f"--b\r\nContent-Type: application/json\r\n\r\n{meta}\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\n"
        ).encode()
        + data
        + b"\r\n--b--"
    )
    async with httpx.AsyncClient(base_url=drive.google.emulator_url, timeout=10) as google:
        answer = await google.post(
            "/upload/drive/v3/files",
            params={"uploadType": "multipart"},
            content=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "multipart/related; boundary=b",
            },
        )
    answer.raise_for_status()
    made: dict[str, Any] = answer.json()
    return made


async def files(timeline: httpx.AsyncClient, user: ActingUser, lead_id: str) -> list[Any]:
    answer = await timeline.get(
        f"/api/timeline/lead/{lead_id}", params={"kinds": "file"}, headers=user.headers
    )
    return list(answer.json()["items"]) if answer.status_code == 200 else []


async def test_a_file_added_in_drive_by_someone_else_is_on_the_leads_timeline(
    world: World, timeline_app: OpenService, users: Users
) -> None:
    drive = ServiceUnderTest(
        world,
        build_app=build_drive,
        settings_class=DriveSettings,
        product="drive",
        outbox=TABLES.outbox,
        at_url=lambda url: {"webhook_url": url + WEBHOOK_PATH},
    )
    admin = users.make(Role.ADMIN)
    owner = users.make(Role.REP, teams=["t1"])
    colleague = users.make(Role.REP, teams=["t1"])
    other_team = users.make(Role.REP, teams=["t2"])
    stranger = users.other_org().make(Role.ADMIN)
    async with (
        drive.start() as service,
        timeline_app(CRM_URL=world.crm_url) as timeline,
    ):
        await drive.connect(admin)
        rooted = await service.client.put("/api/drive/root", json={}, headers=admin.headers)
        assert rooted.status_code == 200, rooted.text
        for user in (owner, colleague):
            await drive.connect(user)
        lead_id = await drive.lead(owner, "Acme")
        added = await world.crm.put(
            f"/api/leads/{lead_id}/members/{colleague.sub}",
            json={"role": "collaborator"},
            headers=owner.headers,
        )
        assert added.status_code == 200, added.text
        folder = await service.client.get(
            f"/api/drive/records/lead/{lead_id}/folder", headers=owner.headers
        )
        assert folder.status_code == 200, folder.text
        documents = next(
            s["google_id"] for s in folder.json()["subfolders"] if s["name"] == "Documents"
        )

        made = await add_in_drive(drive, colleague, documents, "terms.txt", b"signed terms")
        [item] = await eventually(
            lambda: files(timeline, owner, lead_id), until=lambda found: len(found) == 1
        )
        assert item["title"] == "terms.txt"
        assert item["source"]["google_id"] == made["id"]
        [event] = await drive.published("drive.file.created", made["id"])
        assert item["source"]["url"] == event["web_view_link"]
        assert item["source"]["url"]
        assert colleague.principal.email in item["participants"]
        assert colleague.principal.email in item["summary"]
        for outsider in (other_team, stranger):
            refused = await timeline.get(f"/api/timeline/lead/{lead_id}", headers=outsider.headers)
            assert refused.status_code == 404
