"""A message's attachments saved into a lead's Drive folder by the automation service, through
the gmail and drive services: each (message, attachment, record) one file, also when the request
is repeated, a key is retried, or a worker saved a file and died before recording it; only for
someone who sees the message in full and may change the record. No token of the requester is
kept: gmail reads the mail for the user named by id, as the org directory has them now."""

import asyncio
import secrets
import signal
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
from pipedesk_testkit.proxy import server_of, tcp_proxy
from pipedesk_testkit.servers import free_port, run_process
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


def acting(user: ActingUser) -> dict[str, str]:
    """The user gmail reads mail for, named by id (no token of theirs goes along)."""
    return {"org_id": user.principal.org_id, "user_id": user.principal.sub}


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
            params=acting(rep),
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
            other = await gmail.internal("GET", path, caller="drive", params=acting(rep))
            assert other.status_code == 403, other.text
            unseen = await gmail.internal("GET", path, params=acting(other_team))
            assert unseen.status_code == 404, unseen.text
            assert unseen.json()["type"].endswith("message-not-found"), unseen.text
            # A user of another org is not a user of this one, whatever their id.
            elsewhere = await gmail.internal(
                "GET", path, params={**acting(rep), "org_id": stranger.principal.org_id}
            )
            assert elsewhere.status_code == 404, elsewhere.text
            unnamed = await gmail.internal("GET", path, params={"org_id": rep.principal.org_id})
            assert unnamed.status_code == 422, unnamed.text
            assert unnamed.json()["errors"][0]["field"] == "query.user_id"
        streamed = await gmail.internal(
            "GET",
            f"/internal/gmail/messages/{message_id}/attachments/{first}",
            params=acting(rep),
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


async def test_a_job_keeps_no_token_and_fails_once_its_requester_is_deactivated(
    world: World, automation_app: OpenService, users: Users, timeline_url: str
) -> None:
    drive_stack, gmail_stack = stacks(world)
    admin = users.make(Role.ADMIN)
    rep = users.make(Role.REP, teams=["t1"])
    subject = f"Offer {secrets.token_hex(4)}"
    async with drive_stack.start() as drive, gmail_stack.start(pubsub_topic=None) as gmail:
        for user in (admin, rep):
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
                "text": "One file.",
                "attachments": {"offer.txt": "the offer"},
            },
        )
        assert delivered.status_code < 300, delivered.text
        message_id = await mirrored_message(world, gmail, rep, subject)
        request = {"message_id": message_id, "record": {"type": "lead", "id": lead}}

        # The job is accepted while nothing relays its work: it waits in the outbox.
        async with automation_app(RELAY_ENABLED="false") as automation:
            answer = await automation.post(
                "/api/automation/attachments-to-drive", json=request, headers=rep.headers
            )
            assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        columns = await rows(
            world.database_url,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'automation' AND table_name = 'attachment_jobs'",
        )
        assert "acting_token" not in {row["column_name"] for row in columns}
        [stored] = await rows(
            world.database_url,
            "SELECT * FROM automation.attachment_jobs WHERE id = CAST(:id AS uuid)",
            id=job_id,
        )
        assert rep.token not in {str(value) for value in stored.values()}
        assert not any(str(value).startswith("eyJ") for value in stored.values()), stored

        # The requester leaves the org before the job runs: gmail reads nothing for them.
        left = await world.crm.post(
            f"/api/users/{rep.sub}/deactivate", json={"reassign_to": admin.sub},
            headers=admin.headers,
        )  # fmt: skip
        assert left.status_code == 201, left.text
        gone = await gmail.internal(
            "GET", f"/internal/gmail/messages/{message_id}/attachments", params=acting(rep)
        )
        assert gone.status_code == 404, gone.text
        assert gone.json()["type"].endswith("acting-user-not-found")

        async with automation_app() as automation:
            job = await finished(automation, admin, job_id)
        assert (job["status"], job["saved"], job["failed"]) == ("failed", 0, 1), job
        [attachment] = job["attachments"]
        assert attachment["error"] == "the requester is no longer an active member of the org"
        assert await folder_files(drive, admin, lead) == []


async def drive_rows(database_url: str, lead: str) -> list[dict[str, Any]]:
    """The lead's files the drive service saved (its own rows: nothing in between)."""
    return await rows(
        database_url,
        "SELECT f.name, f.caller_key FROM drive.files f "
        "JOIN drive.record_folders r ON r.id = f.folder_id "
        "WHERE r.record_type = 'lead' AND r.record_id = :lead AND f.size IS NOT NULL",
        lead=lead,
    )


@pytest.mark.slow
async def test_a_worker_killed_after_saving_the_first_of_three_attachments_saves_each_once(
    world: World, users: Users, timeline_url: str
) -> None:
    drive_stack, gmail_stack = stacks(world)
    admin = users.make(Role.ADMIN)
    rep = users.make(Role.REP, teams=["t1"])
    subject = f"Signed set {secrets.token_hex(4)}"
    async with drive_stack.start() as drive, gmail_stack.start(pubsub_topic=None) as gmail:
        for user in (admin, rep):
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

        # The automation service as a deployment runs it, one event at a time, reaching drive
        # through a proxy that can keep drive's answers from it.
        port = free_port()
        with tcp_proxy(*server_of(drive.url)) as to_drive:
            env = {
                **world.service_env,
                "AUTOMATION_PORT": str(port),
                "CRM_URL": world.crm_url,
                "DRIVE_URL": f"http://127.0.0.1:{to_drive.port}",
                "GMAIL_URL": gmail.url,
                "TIMELINE_URL": timeline_url,
                "CONSUMER_CONCURRENCY": "1",
            }
            ready_url = f"http://127.0.0.1:{port}/readyz"
            base_url = f"http://127.0.0.1:{port}"
            # A loaded machine may take a while to start a process: its readiness is awaited.
            with run_process(
                ["-m", "automation_service"], env=env, ready_url=ready_url, timeout=120
            ) as first:
                # Drive saves what it is sent; its answers stop on the way back.
                to_drive.hold_answers()
                async with httpx.AsyncClient(base_url=base_url, timeout=30) as automation:
                    answer = await automation.post(
                        "/api/automation/attachments-to-drive",
                        json={"message_id": message_id, "record": {"type": "lead", "id": lead}},
                        headers={**rep.headers, "Idempotency-Key": secrets.token_hex(8)},
                    )
                    assert answer.status_code == 202, answer.text
                    job_id = answer.json()["id"]
                    # The first attachment is in Drive; the worker waits for drive's answer and
                    # takes no second one meanwhile.
                    [saved_first] = await eventually(
                        lambda: drive_rows(world.database_url, lead),
                        until=lambda found: len(found) == 1,
                    )
                    first.send_signal(signal.SIGKILL)
                    assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
                pending = await rows(
                    world.database_url,
                    "SELECT status, count(*) AS n FROM automation.job_attachments "
                    "WHERE job_id = CAST(:id AS uuid) GROUP BY status",
                    id=job_id,
                )
                assert pending == [{"status": "pending", "n": 3}], pending
            to_drive.restore()

            with run_process(
                ["-m", "automation_service"], env=env, ready_url=ready_url, timeout=120
            ):
                async with httpx.AsyncClient(base_url=base_url, timeout=30) as automation:
                    job = await finished(automation, rep, job_id)
        assert (job["status"], job["saved"], job["total"]) == ("done", 3, 3), job
        files = await drive_rows(world.database_url, lead)
        assert sorted(item["name"] for item in files) == sorted(FILES)
        assert saved_first in files
        # Google's Drive holds each once: the emulator's files in the lead's folder.
        folder = await drive.client.get(
            f"/api/drive/records/lead/{lead}/folder", headers=rep.headers
        )
        assert folder.status_code == 200, folder.text
        [attachments] = [
            sub["google_id"]
            for sub in folder.json()["subfolders"]
            if sub["name"] == "Email attachments"
        ]
        in_google = (await world.google.admin("GET", "/drive/files")).json()
        names = [item["name"] for item in in_google if attachments in item.get("parents", [])]
        assert sorted(names) == sorted(FILES)
        listed = await folder_files(drive, rep, lead)
        assert {item["file_id"] for item in job["attachments"]} == {item["id"] for item in listed}


async def test_deleting_a_users_google_data_removes_their_jobs_and_only_the_crm_may_ask(
    world: World, automation_app: OpenService, users: Users, timeline_url: str
) -> None:
    drive_stack, gmail_stack = stacks(world)
    admin = users.make(Role.ADMIN)
    rep = users.make(Role.REP, teams=["t1"])
    subject = f"Papers {secrets.token_hex(4)}"
    async with (
        drive_stack.start() as drive,
        gmail_stack.start(pubsub_topic=None) as gmail,
        automation_app() as automation,
    ):
        for user in (admin, rep):
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
                "text": "One file.",
                "attachments": {"papers.txt": "the papers"},
            },
        )
        assert delivered.status_code < 300, delivered.text
        message_id = await mirrored_message(world, gmail, rep, subject)
        answer = await automation.post(
            "/api/automation/attachments-to-drive",
            json={"message_id": message_id, "record": {"type": "lead", "id": lead}},
            headers=rep.headers,
        )
        assert answer.status_code == 202, answer.text
        job = await finished(automation, rep, answer.json()["id"])
        chosen = await automation.put(
            "/api/automation/preferences", json={"owner_changed": False}, headers=rep.headers
        )
        assert chosen.status_code == 200, chosen.text

        path = f"/internal/lifecycle/users/{rep.sub}/google-data-deleted"
        body = {"org_id": rep.principal.org_id, "actor_id": admin.sub, "job_id": "deletion-1"}
        for caller in ("gmail", "drive", "automation"):
            token = world.service_token(caller, "automation")
            refused = await automation.post(
                path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert refused.status_code == 403, refused.text
        crm = {"Authorization": f"Bearer {world.service_token('crm', 'automation')}"}
        erased = await automation.post(path, json=body, headers=crm)
        assert erased.status_code == 200, erased.text
        assert erased.json()["ended"]["jobs"] == 1
        # Called again for the same job, the part answers what it did; for another job, nothing.
        again = await automation.post(path, json=body, headers=crm)
        assert again.json()["ended"]["jobs"] == 1
        another = await automation.post(path, json={**body, "job_id": "deletion-2"}, headers=crm)
        assert another.json()["ended"]["jobs"] == 0
        gone = await automation.get(f"/api/automation/jobs/{job['id']}", headers=rep.headers)
        assert gone.status_code == 404
        left = await rows(
            world.database_url,
            "SELECT count(*) AS n FROM automation.attachment_jobs WHERE user_id = :user",
            user=rep.sub,
        )
        assert left == [{"n": 0}]
        # Their choices are not Google data: they stay.
        kept = await automation.get("/api/automation/preferences", headers=rep.headers)
        assert kept.json()["owner_changed"] is False
        # The file saved into the lead is the lead's: it stays.
        assert [item["name"] for item in await folder_files(drive, rep, lead)] == ["papers.txt"]
