"""Reading mail through the gmail service, at the viewer's level (the timeline's rule): a
teammate's mail on a record they read, at its mailbox's sharing level; attachments only in
full, always as attachments; another team's rep and another org see nothing; mail linked to a
record by hand shows on its timeline, leaves it when unlinked, and both are audited; a record's
messages page."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from gmail_service.app import build_app as build_gmail
from gmail_service.settings import GmailSettings
from pipedesk_common.auth import Role
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.servers import port_of, reserve_port, serve_in_thread
from pipedesk_testkit.waiting import eventually
from timeline_service.app import build_app as build_timeline
from timeline_service.settings import TimelineSettings

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]
TOPIC = "projects/pipedesk-test/topics/gmail-reading"
PUSH_ACCOUNT = "gmail-push@pipedesk-test.iam.gserviceaccount.com"
BUYER = "buyer@customer.example"
PAGE = b"<html><script>alert(document.cookie)</script></html>"


@dataclass
class Pipeline:
    crm: httpx.AsyncClient
    gmail: httpx.AsyncClient
    timeline: httpx.AsyncClient
    gmail_url: str


@asynccontextmanager
async def pipeline(
    google: GoogleStack,
    service_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    **gmail_settings: Any,
) -> AsyncIterator[Pipeline]:
    sock = reserve_port()
    gmail_url = f"http://127.0.0.1:{port_of(sock)}"
    webhook = gmail_url + GmailSettings.webhook_path
    await google.admin(
        "PUT",
        "/pubsub/pipedesk-test/topics/gmail-reading",
        json={"push_endpoint": webhook, "service_account": PUSH_ACCOUNT},
    )
    with serve_in_thread(build_crm(CrmSettings(**service_env))) as crm_url:
        timeline_app = build_timeline(TimelineSettings(**service_env, crm_url=crm_url))
        with serve_in_thread(timeline_app) as timeline_url:
            monkeypatch.setenv("TIMELINE_URL", timeline_url)
            settings = GmailSettings(
                **service_env,
                crm_url=crm_url,
                jobs_enabled=False,
                webhook_url=webhook,
                pubsub_topic=TOPIC,
                push_service_account=PUSH_ACCOUNT,
                push_certs_url=google.emulator_url + "/oauth2/v1/certs",
                **gmail_settings,
            )
            with serve_in_thread(build_gmail(settings), sock=sock):
                async with (
                    httpx.AsyncClient(base_url=timeline_url, timeout=30) as timeline,
                    httpx.AsyncClient(base_url=crm_url, timeout=30) as crm,
                    httpx.AsyncClient(base_url=gmail_url, timeout=60) as gmail,
                ):
                    yield Pipeline(crm, gmail, timeline, gmail_url)


async def emails(timeline: httpx.AsyncClient, user: ActingUser, lead_id: str) -> list[Any]:
    answer = await timeline.get(
        f"/api/timeline/lead/{lead_id}", params={"kinds": "email"}, headers=user.headers
    )
    return list(answer.json()["items"]) if answer.status_code == 200 else []


async def connected(running: Pipeline, google: GoogleStack, user: ActingUser) -> None:
    await google.connect(user, ["gmail"])
    answer = await running.gmail.post("/api/gmail/mailbox", headers=user.headers)
    assert answer.status_code in (200, 201), answer.text
    await eventually(
        lambda: google.admin("GET", f"/gmail/{user.principal.email}/watch"),
        until=lambda watch: watch.json()["watching"],
    )


def with_html_attachment(sender: str, to: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.lower()}@customer.example>"
    message.set_content("The page is attached.")
    message.add_attachment(PAGE, maintype="text", subtype="html", filename='quote"é/..\\x.html')
    return message.as_bytes()


async def seed(google: GoogleStack, address: str, raw: bytes) -> None:
    import base64

    spec = {"raw": base64.urlsafe_b64encode(raw).decode(), "label_ids": ["INBOX"]}
    (await google.admin("POST", f"/gmail/{address}/messages", json=spec)).raise_for_status()


async def mirrored(gmail: httpx.AsyncClient, user: ActingUser, lead_id: str, count: int) -> Any:
    """The lead's messages as ``user`` reads them, once ``count`` are there."""
    return await eventually(
        lambda: gmail.get(f"/api/gmail/records/lead/{lead_id}/messages", headers=user.headers),
        until=lambda answer: answer.status_code == 200 and len(answer.json()["items"]) >= count,
    )


async def test_mail_reads_at_the_viewers_level_and_links_by_hand_are_audited(
    google: GoogleStack,
    users: Users,
    service_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    reader = users.make(Role.MANAGER, teams=["t1"])  # reads the rep's leads; holds no mail
    other_team = users.make(Role.REP, teams=["t2"])
    stranger = users.other_org().make(Role.ADMIN)
    admin = users.make(Role.ADMIN)
    colleague = f"partner@{rep.principal.email.rpartition('@')[2]}"
    async with pipeline(google, service_env, monkeypatch) as running:
        crm, gmail, timeline = running.crm, running.gmail, running.timeline
        for user in (rep, reader, other_team, admin):
            (await crm.get("/api/users", headers=user.headers)).raise_for_status()
        contact = await crm.post(
            "/api/contacts", json={"name": "Buyer", "emails": [BUYER]}, headers=rep.headers
        )
        lead = (
            await crm.post(
                "/api/leads",
                json={"title": "Acme", "contact_ids": [contact.json()["id"]]},
                headers=rep.headers,
            )
        ).json()
        other_lead = (
            await crm.post("/api/leads", json={"title": "Other"}, headers=other_team.headers)
        ).json()
        await connected(running, google, rep)
        await gmail.patch("/api/gmail/mailbox", json={"sharing": "subject"}, headers=rep.headers)
        await seed(
            google, rep.principal.email, with_html_attachment(BUYER, rep.principal.email, "Pricing")
        )
        await google.admin(
            "POST",
            "/gmail/deliver",
            json={"sender": BUYER, "to": [rep.principal.email], "subject": "Budget", "text": "B"},
        )

        # The rep's own mail, in full.
        own = (await mirrored(gmail, rep, lead["id"], 2)).json()["items"]
        assert [m["subject"] for m in own] == ["Budget", "Pricing"]
        assert all(m["level"] == "full" and m["own"] for m in own)
        pricing = own[1]
        assert pricing["attachments"][0]["mime_type"] == "text/html"
        attachment = (
            f"/api/gmail/messages/{pricing['id']}/attachments/{pricing['attachments'][0]['id']}"
        )

        # A teammate who reads the lead: at the mailbox's level (subject), no attachment.
        seen = (await mirrored(gmail, reader, lead["id"], 2)).json()["items"]
        assert [(m["subject"], m["level"], m["text_body"]) for m in seen] == [
            ("Budget", "subject", None),
            ("Pricing", "subject", None),
        ]
        assert seen[1]["attachments"] is None
        assert (await gmail.get(attachment, headers=reader.headers)).status_code == 404
        # Pages of one: each message at the viewer's level, the cursor through all of them.
        first = await gmail.get(
            f"/api/gmail/records/lead/{lead['id']}/messages",
            params={"limit": 1},
            headers=reader.headers,
        )
        assert [m["subject"] for m in first.json()["items"]] == ["Budget"]
        second = await gmail.get(
            f"/api/gmail/records/lead/{lead['id']}/messages",
            params={"limit": 1, "cursor": first.json()["next_cursor"]},
            headers=reader.headers,
        )
        assert [m["subject"] for m in second.json()["items"]] == ["Pricing"]
        assert second.json()["next_cursor"] is None

        await gmail.patch("/api/gmail/mailbox", json={"sharing": "full"}, headers=rep.headers)
        message = await gmail.get(f"/api/gmail/messages/{pricing['id']}", headers=reader.headers)
        assert message.json()["level"] == "full"
        assert message.json()["text_body"].strip() == "The page is attached."
        thread = await gmail.get(
            f"/api/gmail/threads/{pricing['thread_id']}", headers=reader.headers
        )
        assert [m["subject"] for m in thread.json()["messages"]] == ["Pricing"]
        download = await gmail.get(attachment, headers=reader.headers)
        assert download.status_code == 200, download.text
        assert download.content == PAGE
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-disposition"] == (
            "attachment; filename=\"quote_..x.html\"; filename*=UTF-8''quote%C3%A9..x.html"
        )

        # Another team's rep and another org: nothing, by any route.
        for outsider in (other_team, stranger):
            for path in (
                f"/api/gmail/messages/{pricing['id']}",
                f"/api/gmail/threads/{pricing['thread_id']}",
                attachment,
                f"/api/gmail/records/lead/{lead['id']}/messages",
            ):
                refused = await gmail.get(path, headers=outsider.headers)
                assert refused.status_code == 404, (path, refused.text)

        # Internal mail is matched to no record: the reader cannot read it until it is linked.
        sent = await google.admin(
            "POST",
            "/gmail/deliver",
            json={"sender": rep.principal.email, "to": [colleague], "subject": "Plan", "text": "P"},
        )
        google_id = sent.json()[rep.principal.email]["id"]
        own_mail = await eventually(
            lambda: gmail.get(
                f"/api/gmail/threads/{sent.json()[rep.principal.email]['threadId']}",
                headers=rep.headers,
            ),
            until=lambda answer: answer.status_code == 200,
        )
        plan = own_mail.json()["messages"][0]
        thread_id = plan["thread_id"]
        assert (
            await gmail.get(f"/api/gmail/messages/{plan['id']}", headers=reader.headers)
        ).status_code == 404
        links = f"/api/gmail/threads/{thread_id}/links"
        to_lead = {"type": "lead", "id": lead["id"]}
        refused = await gmail.post(
            links, json={"type": "lead", "id": other_lead["id"]}, headers=rep.headers
        )
        assert refused.status_code == 404  # a lead the rep cannot read
        assert (
            await gmail.post(links, json=to_lead, headers=other_team.headers)
        ).status_code == 404
        assert (await gmail.post(links, json=to_lead, headers=stranger.headers)).status_code == 404
        linked = await gmail.post(links, json=to_lead, headers=rep.headers)
        assert linked.status_code == 201, linked.text
        assert linked.json()["messages"] == [plan["id"]]
        on_timeline = await eventually(
            lambda: emails(timeline, rep, lead["id"]),
            until=lambda found: any(i["source"]["google_id"] == google_id for i in found),
        )
        assert on_timeline
        read = await gmail.get(f"/api/gmail/messages/{plan['id']}", headers=reader.headers)
        assert read.status_code == 200
        assert read.json()["links"] == [{"type": "lead", "id": lead["id"], "hidden": False}]
        # The reader may read it but holds no copy: not theirs to link.
        assert (await gmail.post(links, json=to_lead, headers=reader.headers)).status_code == 403

        unlinked = await gmail.delete(f"{links}/lead/{lead['id']}", headers=rep.headers)
        assert unlinked.status_code == 204
        await eventually(
            lambda: emails(timeline, rep, lead["id"]),
            until=lambda found: all(i["source"]["google_id"] != google_id for i in found),
        )
        again = await gmail.delete(f"{links}/lead/{lead['id']}", headers=rep.headers)
        assert again.status_code == 404

        audit = await eventually(
            lambda: crm.get(
                "/api/audit",
                params={"entity_type": "lead", "entity_id": lead["id"]},
                headers=admin.headers,
            ),
            until=lambda answer: (
                sum(e["action"] in ("mail_linked", "mail_unlinked") for e in answer.json()["items"])
                == 2
            ),
        )
        entries = [e for e in audit.json()["items"] if e["action"].startswith("mail_")]
        assert sorted(e["action"] for e in entries) == ["mail_linked", "mail_unlinked"]
        assert {e["actor_id"] for e in entries} == {rep.principal.sub}


async def test_one_message_in_two_mailboxes_reads_once_at_the_most_it_may_be_seen(
    google: GoogleStack,
    users: Users,
    service_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])  # holds a copy, shares it in full
    reader = users.make(Role.MANAGER, teams=["t1"])  # holds none
    viewer = users.make(Role.VIEWER, teams=["t1"])  # reads the team's leads, changes none
    limit = len(PAGE) - 1
    async with pipeline(google, service_env, monkeypatch, max_attachment_bytes=limit) as running:
        crm, gmail = running.crm, running.gmail
        for user in (rep, manager, reader, viewer):
            (await crm.get("/api/users", headers=user.headers)).raise_for_status()
        contact = await crm.post(
            "/api/contacts", json={"name": "Buyer", "emails": [BUYER]}, headers=rep.headers
        )
        lead = (
            await crm.post(
                "/api/leads",
                json={"title": "Acme", "contact_ids": [contact.json()["id"]]},
                headers=rep.headers,
            )
        ).json()
        for user in (rep, manager, viewer):
            await connected(running, google, user)
        await gmail.patch("/api/gmail/mailbox", json={"sharing": "full"}, headers=manager.headers)
        raw = with_html_attachment(BUYER, rep.principal.email, "Terms")
        for user in (rep, manager):
            await seed(google, user.principal.email, raw)

        listed = await eventually(
            lambda: gmail.get(
                f"/api/gmail/records/lead/{lead['id']}/messages", headers=reader.headers
            ),
            until=lambda answer: (
                answer.status_code == 200
                and [m["level"] for m in answer.json()["items"]] == ["full"]
            ),
        )
        [shown] = listed.json()["items"]  # one message, however many mailboxes hold it
        assert shown["owner_id"] == manager.principal.sub  # the copy shared in full
        assert shown["text_body"].strip() == "The page is attached."
        copies = await eventually(
            lambda: gmail.get(
                f"/api/gmail/records/lead/{lead['id']}/messages", headers=rep.headers
            ),
            until=lambda answer: answer.status_code == 200 and len(answer.json()["items"]) == 1,
        )
        own = copies.json()["items"][0]
        assert own["owner_id"] == rep.principal.sub
        assert own["own"]
        assert own["label_ids"] == ["INBOX"]
        # Any copy's id reads the same message, as the reader may see it.
        by_rep_copy = await gmail.get(f"/api/gmail/messages/{own['id']}", headers=reader.headers)
        assert by_rep_copy.json()["id"] == shown["id"]
        assert by_rep_copy.json()["label_ids"] is None  # another's labels are theirs

        # Over GMAIL_MAX_ATTACHMENT_BYTES: 413, and Gmail is never asked for it.
        path = f"/api/gmail/messages/{shown['id']}/attachments/{shown['attachments'][0]['id']}"
        too_large = await gmail.get(path, headers=reader.headers)
        assert too_large.status_code == 413, too_large.text
        assert too_large.headers["content-type"] == "application/problem+json"
        asked = await google.requests(
            user=manager.principal.email, api="gmail.users.messages.attachments.get"
        )
        assert asked == []
        missing = await gmail.get(
            f"/api/gmail/messages/{shown['id']}/attachments/9", headers=reader.headers
        )
        assert missing.status_code == 404

        # A viewer may read the lead's mail but not add to the lead: their own mail neither.
        note = await google.admin(
            "POST",
            "/gmail/deliver",
            json={"sender": viewer.principal.email, "to": [BUYER], "subject": "Hi", "text": "."},
        )
        thread_id = note.json()[viewer.principal.email]["threadId"]
        await eventually(
            lambda: gmail.get(f"/api/gmail/threads/{thread_id}", headers=viewer.headers),
            until=lambda answer: answer.status_code == 200,
        )
        refused = await gmail.post(
            f"/api/gmail/threads/{thread_id}/links",
            json={"type": "lead", "id": lead["id"]},
            headers=viewer.headers,
        )
        assert refused.status_code == 403, refused.text

        # Bad input: 4xx problems naming what is wrong.
        for bad_path, status in (
            ("/api/gmail/messages/not-a-uuid", 422),
            ("/api/gmail/threads/bad%20id", 422),
            (f"/api/gmail/records/task/{lead['id']}/messages", 422),
            (f"/api/gmail/records/lead/{lead['id']}/messages?cursor=forged.x", 400),
            (f"/api/gmail/messages/{shown['id']}/attachments/x;y", 422),
        ):
            answer = await gmail.get(bad_path, headers=reader.headers)
            assert answer.status_code == status, (bad_path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
        wrong = await gmail.post(
            f"/api/gmail/threads/{thread_id}/links",
            json={"type": "contact", "id": lead["id"]},
            headers=viewer.headers,
        )
        assert wrong.status_code == 422
        assert "type" in wrong.text
