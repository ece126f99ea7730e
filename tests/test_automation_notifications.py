"""Owner-change emails: the new owner (and, per the org's setting, the previous one) gets exactly
one email per change, from the org's automation sender, also when the change is delivered twice
or Gmail's answer is lost after it sent the message; a user who opted out gets none."""

from typing import Any

import aio_pika
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from automation_service.app import build_app as build_automation
from automation_service.models import outbox as automation_outbox
from automation_service.notifications import email_identity
from automation_service.settings import AutomationSettings
from gmail_service.app import build_app as build_gmail
from gmail_service.models import TABLES as GMAIL_TABLES
from gmail_service.settings import GmailSettings
from pipedesk_common.auth import Role
from pipedesk_common.events import decode_event
from pipedesk_common.messaging import Topology
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.service import ServiceUnderTest, World
from pipedesk_testkit.waiting import eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]
SEND = "gmail.users.messages.send"


async def mailbox(world: World, user: ActingUser) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (
        await world.google.admin("GET", f"/gmail/{user.principal.email}/messages")
    ).json()
    return found


async def mail_to(world: World, sender: ActingUser, recipient: ActingUser) -> list[str]:
    """The Message-IDs of the mail in ``sender``'s sent mail that reached ``recipient``."""
    sent = {m["messageId"] for m in await mailbox(world, sender) if "SENT" in m["labelIds"]}
    return [m["messageId"] for m in await mailbox(world, recipient) if m["messageId"] in sent]


async def hand_over(
    world: World, actor: ActingUser, lead: str, owner: ActingUser, reason: str
) -> None:
    answer = await world.crm.post(
        f"/api/leads/{lead}/change-owner",
        json={"new_owner_id": owner.sub, "reason": reason},
        headers=actor.headers,
    )
    assert answer.status_code == 200, answer.text


async def redeliver(world: World, routing_key: str, lead: str) -> None:
    """The CRM's event of this kind for the lead, published to the broker once more."""
    [body] = [
        row
        for row in await raw_bodies(world, routing_key)
        if f'"id":"{lead}"'.encode() in row or f'"id": "{lead}"'.encode() in row
    ][:1]
    connection = await aio_pika.connect(world.service_env["AMQP_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await Topology(world.service_env["BROKER_PREFIX"]).declare_exchange(channel)
        message = aio_pika.Message(body, content_type="application/cloudevents+json")
        await exchange.publish(message, routing_key=routing_key)
    finally:
        await connection.close()


async def raw_bodies(world: World, routing_key: str) -> list[bytes]:
    engine = create_async_engine(world.database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text("SELECT body FROM crm.outbox WHERE routing_key = :key ORDER BY id"),
                {"key": routing_key},
            )
            return [bytes(row[0]) for row in result]
    finally:
        await engine.dispose()


async def notifications_sent(world: World, record_id: str) -> list[dict[str, Any]]:
    engine = create_async_engine(world.database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(automation_outbox.c.body)
                    .where(automation_outbox.c.routing_key == "automation.notification.sent")
                    .order_by(automation_outbox.c.id)
                )
            ).all()
    finally:
        await engine.dispose()
    found = [decode_event(row.body).data.model_dump(mode="json") for row in rows]
    return [data for data in found if data["record"]["id"] == record_id]


async def holders(world: World, identity: str) -> int:
    engine = create_async_engine(world.database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                text(
                    "SELECT count(*) FROM timeline.holders h JOIN timeline.items i "
                    "ON i.id = h.item_id WHERE i.identity = :identity"
                ),
                {"identity": identity},
            )
    finally:
        await engine.dispose()
    return int(count or 0)


async def test_each_owner_change_is_one_email_to_the_new_owner_from_the_org_sender(
    world: World,
    open_service: OpenService,
    users: Users,
    monkeypatch: pytest.MonkeyPatch,
    timeline_url: str,
) -> None:
    monkeypatch.setenv("CRM_URL", world.crm_url)
    gmail_stack = ServiceUnderTest(
        world,
        build_app=build_gmail,
        settings_class=GmailSettings,
        product="gmail",
        outbox=GMAIL_TABLES.outbox,
    )
    admin = users.make(Role.ADMIN)
    manager = users.make(Role.MANAGER, teams=["t1"])
    rep = users.make(Role.REP, teams=["t1"])
    taker = users.make(Role.REP, teams=["t1"])
    quiet = users.make(Role.REP, teams=["t1"])
    viewer = users.make(Role.VIEWER, teams=["t1"])
    stranger = users.other_org().make(Role.ADMIN)
    async with (
        gmail_stack.start(pubsub_topic=None) as gmail,
        open_service(build_automation, AutomationSettings) as automation,
    ):
        for user in (admin, manager, rep, taker, quiet, viewer):
            (await world.crm.get("/api/users", headers=user.headers)).raise_for_status()
        for user in (admin, taker):
            await world.google.connect(user, ["gmail"])
            connected = await gmail.client.post("/api/gmail/mailbox", headers=user.headers)
            assert connected.status_code in (200, 201), connected.text
        configured = await gmail.client.put(
            "/api/gmail/settings", json={"automation_sender_id": admin.sub}, headers=admin.headers
        )
        assert configured.status_code == 200, configured.text

        # The org's setting is the admins'; a preference is each user's own.
        refused = await automation.put(
            "/api/automation/settings",
            json={"notify_previous_owner": True},
            headers=viewer.headers,
        )
        assert refused.status_code == 403, refused.text
        bad = await automation.put(
            "/api/automation/preferences",
            json={"owner_changed": "sometimes"},
            headers=quiet.headers,
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body.owner_changed"
        opted = await automation.put(
            "/api/automation/preferences", json={"owner_changed": False}, headers=quiet.headers
        )
        assert opted.status_code == 200, opted.text
        mine = await automation.get("/api/automation/preferences", headers=rep.headers)
        assert mine.json() == {"owner_changed": True, "sla_warning": True, "sla_breached": True}

        lead = (
            await world.crm.post("/api/leads", json={"title": "Acme <b>"}, headers=rep.headers)
        ).json()["id"]
        await hand_over(world, manager, lead, taker, "Territory <moves>")
        [first] = await eventually(
            lambda: mail_to(world, admin, taker), until=lambda got: len(got) == 1
        )
        assert await mail_to(world, admin, rep) == []  # the org does not tell previous owners

        # The change delivered again, then Gmail's answer to the next send lost after it sent:
        # one email each still.
        await redeliver(world, "crm.lead.owner_changed", lead)
        await world.google.admin(
            "POST", "/faults", json={"api_method": SEND, "after_store": True, "status": 503}
        )
        await hand_over(world, manager, lead, rep, "Back to you")
        [back] = await eventually(
            lambda: mail_to(world, admin, rep), until=lambda got: len(got) == 1
        )
        assert len(await mail_to(world, admin, taker)) == 1

        # The sent notification's timeline item is the email's: its Message-ID.
        sent = await eventually(
            lambda: notifications_sent(world, lead),
            until=lambda got: len(got) == 2,
        )
        identities = {item["timeline"]["identity"] for item in sent}
        assert [item["recipient_ids"] for item in sent] == [[taker.sub], [rep.sub]]
        assert "Territory <moves>" in sent[0]["timeline"]["summary"]
        assert identities == {email_identity(first), email_identity(back)}

        # The sender's copy (announced as sent) and the new owner's (read by their mailbox's
        # sync) are the same timeline item as the notification: three holders, one email.
        await gmail.run_job("gmail.catch-up")
        await eventually(
            lambda: holders(world, email_identity(first)), until=lambda count: count == 3
        )
        async with httpx.AsyncClient(base_url=timeline_url) as timeline:
            page = await timeline.get(
                f"/api/timeline/lead/{lead}", params={"kinds": "email"}, headers=rep.headers
            )
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) == 2  # the two notifications, each once

        # A user who opted out gets nothing.
        await hand_over(world, manager, lead, quiet, "Opted out")
        await hand_over(world, manager, lead, taker, "After the opt-out")
        await eventually(lambda: mail_to(world, admin, taker), until=lambda got: len(got) == 2)
        assert await mail_to(world, admin, quiet) == []

        # An org that tells previous owners: the one email goes to both.
        own = await automation.put(
            "/api/automation/settings", json={"notify_previous_owner": True}, headers=admin.headers
        )
        assert own.status_code == 200, own.text
        elsewhere = await automation.get("/api/automation/settings", headers=stranger.headers)
        assert elsewhere.json() == {"notify_previous_owner": False}
        await hand_over(world, manager, lead, rep, "Both told")
        to_rep = await eventually(
            lambda: mail_to(world, admin, rep), until=lambda got: len(got) == 2
        )
        [both] = [message for message in to_rep if message != back]
        assert both in await mail_to(world, admin, taker)
        assert len(await mail_to(world, admin, taker)) == 3


async def test_without_an_automation_sender_the_actors_own_mailbox_sends_it_once(
    world: World,
    open_service: OpenService,
    users: Users,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_URL", world.crm_url)
    gmail_stack = ServiceUnderTest(
        world,
        build_app=build_gmail,
        settings_class=GmailSettings,
        product="gmail",
        outbox=GMAIL_TABLES.outbox,
    )
    manager = users.make(Role.MANAGER, teams=["t1"])
    rep = users.make(Role.REP, teams=["t1"])
    taker = users.make(Role.REP, teams=["t1"])
    async with (
        gmail_stack.start(pubsub_topic=None) as gmail,
        open_service(build_automation, AutomationSettings),
    ):
        for user in (manager, rep, taker):
            (await world.crm.get("/api/users", headers=user.headers)).raise_for_status()
        await world.google.connect(manager, ["gmail"])
        connected = await gmail.client.post("/api/gmail/mailbox", headers=manager.headers)
        assert connected.status_code in (200, 201), connected.text
        lead = (
            await world.crm.post("/api/leads", json={"title": "Acme"}, headers=rep.headers)
        ).json()["id"]
        await hand_over(world, manager, lead, taker, "Coverage")
        [sent] = await eventually(
            lambda: mail_to(world, manager, taker), until=lambda got: len(got) == 1
        )
        [announced] = await eventually(
            lambda: notifications_sent(world, lead), until=lambda got: len(got) == 1
        )
        assert announced["sender"] == manager.principal.email
        assert announced["timeline"]["identity"] == email_identity(sent)
        assert announced["timeline"]["actor_id"] == manager.sub
