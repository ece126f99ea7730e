"""A message's attachments saved into a lead's Drive folder by the automation service, through
the gmail and drive services: each (message, attachment, record) one file, also when the request
is repeated, a key is retried, or a worker saved a file and died before recording it; only for
someone who sees the message in full and may change the record."""

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from automation_service.app import TRANSFERS_QUEUE
from automation_service.app import build_app as build_automation
from automation_service.settings import AutomationSettings
from drive_service.app import build_app as build_drive
from drive_service.models import TABLES as DRIVE_TABLES
from drive_service.settings import WEBHOOK_PATH, DriveSettings
from gmail_service.app import build_app as build_gmail
from gmail_service.models import TABLES as GMAIL_TABLES
from gmail_service.settings import GmailSettings
from pipedesk_common.auth import Role
from pipedesk_common.dlq import list_dead_letters, replay_dead_letters
from pipedesk_common.messaging import Topology
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import free_port
from pipedesk_testkit.service import RunningService, ServiceUnderTest, World
from pipedesk_testkit.waiting import eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]
BUYER = f"buyer@customer-{secrets.token_hex(4)}.example"
FILES = {"quote.txt": "the quote", "terms.txt": "the terms", "plan.txt": "the plan"}


@pytest.fixture
def automation_app(
    open_service: OpenService, world: World, monkeypatch: pytest.MonkeyPatch
) -> OpenService:
    monkeypatch.setenv("CRM_URL", world.crm_url)

    def open_app(**overrides: Any) -> Any:
        return open_service(build_automation, AutomationSettings, **overrides)

    return open_app


async def rows(database_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(sql), params)
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def mirrored_message(
    world: World, gmail: RunningService, user: ActingUser, subject: str
) -> str:
    async def found() -> list[dict[str, Any]]:
        await gmail.run_job("gmail.catch-up")
        return await rows(
            world.database_url,
            "SELECT m.id FROM gmail.messages m JOIN gmail.mailboxes b ON b.id = m.mailbox_id "
            "WHERE b.org_id = :org AND b.user_id = :user AND m.subject = :subject",
            org=user.principal.org_id,
            user=user.principal.sub,
            subject=subject,
        )

    [row] = await eventually(found, until=lambda got: len(got) == 1)
    return str(row["id"])


async def folder_files(drive: RunningService, user: ActingUser, lead: str) -> list[dict[str, Any]]:
    answer = await drive.client.get(f"/api/drive/records/lead/{lead}/files", headers=user.headers)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["items"]
    return [item for item in found if item["subfolder"] == "Email attachments"]


async def finished(automation: httpx.AsyncClient, user: ActingUser, job_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        answer = await automation.get(f"/api/automation/jobs/{job_id}", headers=user.headers)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        return job

    return await eventually(read, until=lambda job: job["status"] != "pending")


def stacks(world: World) -> Iterator[ServiceUnderTest]:
    yield ServiceUnderTest(
        world,
        build_app=build_drive,
        settings_class=DriveSettings,
        product="drive",
        outbox=DRIVE_TABLES.outbox,
        at_url=lambda url: {"webhook_url": url + WEBHOOK_PATH},
    )
    yield ServiceUnderTest(
        world,
        build_app=build_gmail,
        settings_class=GmailSettings,
        product="gmail",
        outbox=GMAIL_TABLES.outbox,
    )


async def test_three_attachments_become_three_files_once_however_often_asked(
    world: World, automation_app: OpenService, users: Users, timeline_url: str
) -> None:
    drive_stack, gmail_stack = stacks(world)
    admin = users.make(Role.ADMIN)
    rep = users.make(Role.REP, teams=["t1"])
    viewer = users.make(Role.VIEWER, teams=["t1"])
    other_team = users.make(Role.REP, teams=["t2"])
    stranger = users.other_org().make(Role.ADMIN)
    subject = f"Documents {secrets.token_hex(4)}"
    async with (
        drive_stack.start() as drive,
        gmail_stack.start(pubsub_topic=None) as gmail,
        automation_app() as automation,
    ):
        for user in (admin, rep, viewer, other_team, stranger):
            (await world.crm.get("/api/users", headers=user.headers)).raise_for_status()
        await world.google.connect(admin, ["drive"])
        rooted = await drive.client.put("/api/drive/root", json={}, headers=admin.headers)
        assert rooted.status_code == 200, rooted.text
        await world.google.connect(rep, ["drive", "gmail"])
        connected = await gmail.client.post("/api/gmail/mailbox", headers=rep.headers)
        assert connected.status_code in (200, 201), connected.text
        lead = await drive_stack.lead(rep, "Acme")
        delivered = await world.google.admin(
            "POST",
            "/gmail/deliver",
            json={
                "sender": BUYER,
                "to": [rep.principal.email],
                "subject": subject,
                "text": "Three files.",
                "attachments": FILES,
            },
        )
        assert delivered.status_code < 300, delivered.text
        message_id = await mirrored_message(world, gmail, rep, subject)
        request = {"message_id": message_id, "record": {"type": "lead", "id": lead}}

        # Who may not: another org's user and a rep of another team do not see the lead (404);
        # a viewer of its team reads it but may not add to it (403).
        for outsider, status in ((stranger, 404), (other_team, 404), (viewer, 403)):
            refused = await automation.post(
                "/api/automation/attachments-to-drive", json=request, headers=outsider.headers
            )
            assert refused.status_code == status, refused.text
        unknown = await automation.post(
            "/api/automation/attachments-to-drive",
            json={**request, "attachment_ids": ["99"]},
            headers=rep.headers,
        )
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["errors"][0]["field"] == "body.attachment_ids.0"

        listed = await gmail.internal(
            "GET",
            f"/internal/gmail/messages/{message_id}/attachments",
            headers={"X-Acting-User-Token": rep.token},
        )
        assert listed.status_code == 200, listed.text
        parts = [item["attachment_id"] for item in listed.json()["attachments"]]
        assert len(parts) == 3

        # A worker that saved the first file and died before recording it: Drive holds it
        # under the key, and the job finds it instead of saving a second.
        first = parts[0]
        key = f"gmail:{message_id}:{first}:lead:{lead}"
        early = await drive.internal(
            "POST",
            f"/internal/records/lead/{lead}/files",
            params={"org_id": rep.principal.org_id, "name": "quote.txt", "key": key},
            content=b"the quote",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert early.status_code == 201, early.text

        idempotency = {**rep.headers, "Idempotency-Key": secrets.token_hex(8)}
        answer = await automation.post(
            "/api/automation/attachments-to-drive", json=request, headers=idempotency
        )
        assert answer.status_code == 202, answer.text
        job = await finished(automation, rep, answer.json()["id"])
        assert (job["status"], job["saved"], job["total"]) == ("done", 3, 3), job
        saved = {item["attachment_id"]: item["file_id"] for item in job["attachments"]}
        assert saved[first] == early.json()["id"]

        replayed = await automation.post(
            "/api/automation/attachments-to-drive", json=request, headers=idempotency
        )
        assert replayed.json()["id"] == job["id"]
        again = await automation.post(
            "/api/automation/attachments-to-drive", json=request, headers=rep.headers
        )
        assert again.status_code == 202, again.text
        second = await finished(automation, rep, again.json()["id"])
        assert second["id"] != job["id"]
        assert {item["attachment_id"]: item["file_id"] for item in second["attachments"]} == saved

        files = await folder_files(drive, rep, lead)
        assert sorted(item["name"] for item in files) == sorted(FILES)
        assert {item["id"] for item in files} == set(saved.values())

        # The job is its requester's: another org's user does not find it.
        hidden = await automation.get(f"/api/automation/jobs/{job['id']}", headers=stranger.headers)
        assert hidden.status_code == 404

        # Gmail's attachment routes answer the automation service only, and only for a user
        # who sees the message in full.
        for path in (
            f"/internal/gmail/messages/{message_id}/attachments",
            f"/internal/gmail/messages/{message_id}/attachments/{first}",
        ):
            other = await gmail.internal(
                "GET", path, caller="drive", headers={"X-Acting-User-Token": rep.token}
            )
            assert other.status_code == 403, other.text
            unseen = await gmail.internal(
                "GET", path, headers={"X-Acting-User-Token": other_team.token}
            )
            assert unseen.status_code == 404, unseen.text
        streamed = await gmail.internal(
            "GET",
            f"/internal/gmail/messages/{message_id}/attachments/{first}",
            headers={"X-Acting-User-Token": rep.token},
        )
        assert streamed.content == b"the quote"


async def test_a_transfer_that_keeps_failing_is_dead_lettered_with_its_reason_and_replayed_once(
    world: World,
    automation_app: OpenService,
    users: Users,
    timeline_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drive_stack, gmail_stack = stacks(world)
    admin = users.make(Role.ADMIN)
    rep = users.make(Role.REP, teams=["t1"])
    subject = f"Contract {secrets.token_hex(4)}"
    # Where the drive service is looked for once it stops: nothing listens there.
    monkeypatch.setenv("DRIVE_URL", f"http://127.0.0.1:{free_port()}")
    queue = Topology(world.service_env["BROKER_PREFIX"]).queue(TRANSFERS_QUEUE)
    amqp = world.service_env["AMQP_URL"]
    async with (
        gmail_stack.start(pubsub_topic=None) as gmail,
        automation_app(CONSUMER_MAX_ATTEMPTS="3") as automation,
    ):
        for user in (admin, rep):
            (await world.crm.get("/api/users", headers=user.headers)).raise_for_status()
        async with drive_stack.start() as drive:
            await world.google.connect(admin, ["drive"])
            rooted = await drive.client.put("/api/drive/root", json={}, headers=admin.headers)
            assert rooted.status_code == 200, rooted.text
            await world.google.connect(rep, ["drive", "gmail"])
            connected = await gmail.client.post("/api/gmail/mailbox", headers=rep.headers)
            assert connected.status_code in (200, 201), connected.text
            lead = await drive_stack.lead(rep, "Acme")
            delivered = await world.google.admin(
                "POST",
                "/gmail/deliver",
                json={
                    "sender": BUYER,
                    "to": [rep.principal.email],
                    "subject": subject,
                    "text": "One file.",
                    "attachments": {"contract.txt": "the contract"},
                },
            )
            assert delivered.status_code < 300, delivered.text
            message_id = await mirrored_message(world, gmail, rep, subject)

        # The drive service is down: the attachment is retried, then dead-lettered with why.
        answer = await automation.post(
            "/api/automation/attachments-to-drive",
            json={"message_id": message_id, "record": {"type": "lead", "id": lead}},
            headers=rep.headers,
        )
        assert answer.status_code == 202, answer.text
        [letter] = await eventually(
            lambda: list_dead_letters(amqp, queue), until=lambda found: len(found) == 1
        )
        assert letter.type == "pipedesk.automation.attachment.requested.v1"
        assert letter.error is not None
        assert letter.error.startswith("TransferFailed: attachment ")
        assert f"of message {message_id}: the transfer broke off" in letter.error
        pending = await automation.get(
            f"/api/automation/jobs/{answer.json()['id']}", headers=rep.headers
        )
        assert pending.json()["status"] == "pending"

        # Back up, the dead letter is replayed by the DLQ tooling: one file.
        async with drive_stack.start() as drive:
            assert await replay_dead_letters(amqp, queue) == 1
            job = await finished(automation, rep, answer.json()["id"])
            assert (job["status"], job["saved"]) == ("done", 1), job
            files = await folder_files(drive, rep, lead)
            assert [item["name"] for item in files] == ["contract.txt"]
