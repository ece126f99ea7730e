"""Mail PipeDesk sends reaches its records at once: a message sent with a link and a record's Drive
file attached (its bytes, read through the drive service for the sender) is on the lead's
timeline before any sync, and stays one item once the mailboxes' syncs read the sender's copy and
a recipient's; a file of a record the sender cannot read, or of another org, is not attached."""

import base64
import email
import email.policy
import os
import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from drive_service.app import build_app as build_drive
from drive_service.models import TABLES as DRIVE_TABLES
from drive_service.settings import WEBHOOK_PATH, DriveSettings
from gmail_service.app import build_app as build_gmail
from gmail_service.models import TABLES as GMAIL_TABLES
from gmail_service.settings import GmailSettings
from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.service import RunningService, ServiceUnderTest, World
from pipedesk_testkit.waiting import eventually

# Each starts the timeline and waits for its events: none of earlier tests' may be ahead of them.
pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]
# Outside: a domain no other test's mail gives an emulated mailbox (the emulator is shared).
BUYER = f"buyer@customer-{secrets.token_hex(4)}.example"


async def emails(timeline: httpx.AsyncClient, user: ActingUser, lead_id: str) -> list[Any]:
    answer = await timeline.get(
        f"/api/timeline/lead/{lead_id}", params={"kinds": "email"}, headers=user.headers
    )
    return list(answer.json()["items"]) if answer.status_code == 200 else []


async def upload(drive: RunningService, user: ActingUser, lead_id: str, data: bytes) -> str:
    answer = await drive.client.post(
        f"/api/drive/records/lead/{lead_id}/files",
        params={"name": "quote.pdf"},
        content=data,
        headers={**user.headers, "Content-Type": "application/pdf"},
    )
    assert answer.status_code == 201, answer.text
    file_id: str = answer.json()["id"]
    return file_id


async def test_a_sent_message_with_a_drive_file_is_on_its_lead_at_once_and_stays_one_item(
    world: World, timeline_app: OpenService, users: Users
) -> None:
    drive_stack = ServiceUnderTest(
        world,
        build_app=build_drive,
        settings_class=DriveSettings,
        product="drive",
        outbox=DRIVE_TABLES.outbox,
        at_url=lambda url: {"webhook_url": url + WEBHOOK_PATH},
    )
    gmail_stack = ServiceUnderTest(
        world,
        build_app=build_gmail,
        settings_class=GmailSettings,
        product="gmail",
        outbox=GMAIL_TABLES.outbox,
    )
    admin = users.make(Role.ADMIN)
    rep = users.make(Role.REP, teams=["t1"])
    teammate = users.make(Role.REP, teams=["t1"])  # a recipient whose mailbox PipeDesk syncs
    other_team = users.make(Role.REP, teams=["t2"])
    stranger = users.other_org().make(Role.ADMIN)
    content = os.urandom(200_000)
    async with (
        drive_stack.start() as drive,
        gmail_stack.start(pubsub_topic=None) as gmail,
        timeline_app(CRM_URL=world.crm_url) as timeline,
    ):
        for user in (admin, rep, teammate, other_team, stranger):
            (await world.crm.get("/api/users", headers=user.headers)).raise_for_status()
        await world.google.connect(admin, ["drive"])
        rooted = await drive.client.put("/api/drive/root", json={}, headers=admin.headers)
        assert rooted.status_code == 200, rooted.text
        for user in (rep, teammate, other_team, stranger):
            await world.google.connect(user, ["drive", "gmail"])
            connected = await gmail.client.post("/api/gmail/mailbox", headers=user.headers)
            assert connected.status_code in (200, 201), connected.text
        lead = await drive_stack.lead(rep, "Acme")
        file_id = await upload(drive, rep, lead, content)

        for outsider in (other_team, stranger):
            refused = await gmail.client.post(
                "/api/gmail/messages",
                json={"to": [BUYER], "drive_file_ids": [file_id]},
                headers={**outsider.headers, "Idempotency-Key": secrets.token_hex(8)},
            )
            assert refused.status_code == 404, refused.text
            assert refused.json()["errors"][0]["field"] == "body.drive_file_ids.0"

        answer = await gmail.client.post(
            "/api/gmail/messages",
            json={
                "to": [BUYER],
                "cc": [teammate.principal.email],
                "subject": "Our quote",
                "text": "Attached.",
                "drive_file_ids": [file_id],
                "links": [{"type": "lead", "id": lead}],
            },
            headers={**rep.headers, "Idempotency-Key": secrets.token_hex(8)},
        )
        assert answer.status_code == 201, answer.text
        sent = answer.json()
        outbound = (await world.google.admin("GET", "/gmail/outbound")).json()
        [raw] = [m["raw"] for m in outbound if m["messageId"] == sent["rfc822_message_id"]]
        received = email.message_from_bytes(
            base64.urlsafe_b64decode(raw), policy=email.policy.default
        )
        [attached] = list(received.iter_attachments())
        assert attached.get_filename() == "quote.pdf"
        assert attached.get_content() == content  # the bytes, not a link

        # On the lead's timeline with no sync run: the send itself announced it.
        [item] = await eventually(
            lambda: emails(timeline, rep, lead), until=lambda found: len(found) == 1
        )
        assert item["title"] == "Our quote"
        assert item["source"]["google_id"] == sent["google_id"]

        # The mailboxes' sync reads the sent copy (its update reaches the timeline) and the
        # teammate's copy (another holder of the same Message-ID): one item still.
        await gmail.run_job("gmail.catch-up")
        updated = await eventually(
            lambda: gmail_stack.published("gmail.message.updated", sent["message_id"]),
            until=bool,
        )
        assert updated
        copy_id = await eventually(
            lambda: gmail_stack.scalar(
                "SELECT id FROM gmail.messages WHERE user_id = :user AND identity = :identity",
                user=teammate.sub,
                identity=sent["rfc822_message_id"].strip("<>"),
            )
        )

        async def applied() -> bool:
            ids = [
                *await world_event_ids(gmail_stack, sent["message_id"]),
                *await world_event_ids(gmail_stack, str(copy_id)),
            ]
            done = await gmail_stack.scalar(
                "SELECT count(*) FROM timeline.inbox WHERE event_id = ANY(CAST(:ids AS uuid[]))",
                ids=ids,
            )
            return bool(done == len(ids))

        await eventually(applied)
        [merged] = await emails(timeline, rep, lead)
        assert merged["title"] == "Our quote"  # the content is the newest holder's copy
        for outsider in (other_team, stranger):
            hidden = await timeline.get(f"/api/timeline/lead/{lead}", headers=outsider.headers)
            assert hidden.status_code == 404


async def world_event_ids(stack: ServiceUnderTest, message_id: str) -> list[str]:
    """The ids of every event the gmail service wrote about one message."""
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT event_id, body FROM gmail.outbox "
                    "WHERE routing_key LIKE 'gmail.message.%'"
                )
            )
            return [str(row.event_id) for row in rows if message_id.encode() in bytes(row.body)]
    finally:
        await engine.dispose()
