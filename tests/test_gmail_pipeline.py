"""Mail reaches record timelines: connected mailboxes synced by push (Google's signed Pub/Sub
push → history sync → events → timeline). One message in two mailboxes is one item; each
mailbox's sharing level decides what a teammate sees; bulk, internal-only and blocklisted mail
is not matched; another team's rep and another org see nothing; a message deleted from every
mailbox holding it leaves the timeline."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import port_of, reserve_port, serve_in_thread
from pipedesk_testkit.waiting import eventually

# Each starts the timeline and waits for its events: none of earlier tests' may be ahead of them.
pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]
TOPIC = "projects/pipedesk-test/topics/gmail-pipeline"
PUSH_ACCOUNT = "gmail-push@pipedesk-test.iam.gserviceaccount.com"
BUYER = "buyer@customer.example"
CFO = "cfo@blocked.example"


@dataclass
class Pipeline:
    crm: httpx.AsyncClient
    gmail: httpx.AsyncClient
    timeline: httpx.AsyncClient


@asynccontextmanager
async def pipeline(
    google: GoogleStack, timeline_app: OpenService, service_env: dict[str, str]
) -> AsyncIterator[Pipeline]:
    sock = reserve_port()
    gmail_url = f"http://127.0.0.1:{port_of(sock)}"
    webhook = gmail_url + GmailSettings.webhook_path
    await google.admin(
        "PUT",
        "/pubsub/pipedesk-test/topics/gmail-pipeline",
        json={"push_endpoint": webhook, "service_account": PUSH_ACCOUNT},
    )
    with serve_in_thread(build_crm(CrmSettings(**service_env))) as crm_url:
        settings = GmailSettings(
            **service_env,
            crm_url=crm_url,
            jobs_enabled=False,
            webhook_url=webhook,
            pubsub_topic=TOPIC,
            push_service_account=PUSH_ACCOUNT,
            push_certs_url=google.emulator_url + "/oauth2/v1/certs",
        )
        with serve_in_thread(build_gmail(settings), sock=sock):
            async with (
                timeline_app(CRM_URL=crm_url) as timeline,
                httpx.AsyncClient(base_url=crm_url) as crm,
                httpx.AsyncClient(base_url=gmail_url, timeout=30) as gmail,
            ):
                yield Pipeline(crm, gmail, timeline)


async def emails(timeline: httpx.AsyncClient, user: ActingUser, lead_id: str) -> list[Any]:
    answer = await timeline.get(
        f"/api/timeline/lead/{lead_id}", params={"kinds": "email"}, headers=user.headers
    )
    return list(answer.json()["items"]) if answer.status_code == 200 else []


async def deliver(google: GoogleStack, sender: str, to: list[str], **spec: Any) -> Any:
    body = {"sender": sender, "to": to, "text": "Numbers attached.", **spec}
    return (await google.admin("POST", "/gmail/deliver", json=body)).json()


async def connected(running: Pipeline, google: GoogleStack, user: ActingUser) -> None:
    await google.connect(user, ["gmail"])
    answer = await running.gmail.post("/api/gmail/mailbox", headers=user.headers)
    assert answer.status_code in (200, 201), answer.text
    await eventually(
        lambda: google.admin("GET", f"/gmail/{user.principal.email}/watch"),
        until=lambda watch: watch.json()["watching"],
    )


async def test_mail_is_one_item_per_message_at_each_mailboxs_sharing_level(
    google: GoogleStack, timeline_app: OpenService, users: Users, service_env: dict[str, str]
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])  # reads the lead; holds one copy
    reader = users.make(Role.MANAGER, teams=["t1"])  # reads the lead; holds nothing
    other_team = users.make(Role.REP, teams=["t2"])
    stranger = users.other_org().make(Role.ADMIN)
    admin = users.make(Role.ADMIN)
    internal = f"partner@{rep.principal.email.rpartition('@')[2]}"
    async with pipeline(google, timeline_app, service_env) as running:
        crm, gmail, timeline = running.crm, running.gmail, running.timeline
        for user in (rep, manager, reader, admin):
            (await crm.get("/api/users", headers=user.headers)).raise_for_status()
        settings = await gmail.put(
            "/api/gmail/settings", json={"blocklist": ["@blocked.example"]}, headers=admin.headers
        )
        assert settings.status_code == 200
        contact_ids = []
        for name, address in (("Buyer", BUYER), ("CFO", CFO), ("Partner", internal)):
            made = await crm.post(
                "/api/contacts", json={"name": name, "emails": [address]}, headers=rep.headers
            )
            contact_ids.append(made.json()["id"])
        lead = (
            await crm.post(
                "/api/leads",
                json={"title": "Acme", "contact_ids": contact_ids},
                headers=rep.headers,
            )
        ).json()
        await connected(running, google, rep)
        await connected(running, google, manager)

        both = await deliver(
            google, BUYER, [rep.principal.email, manager.principal.email], subject="Pricing"
        )
        only_rep = await deliver(google, BUYER, [rep.principal.email], subject="Budget")
        await deliver(
            google,
            BUYER,
            [rep.principal.email],
            subject="Newsletter",
            headers={"List-Unsubscribe": "<mailto:u@customer.example>"},
        )
        await deliver(google, rep.principal.email, [internal], subject="Internal")
        await deliver(google, CFO, [rep.principal.email], subject="Blocked")

        items = await eventually(
            lambda: emails(timeline, rep, lead["id"]), until=lambda found: len(found) >= 2
        )
        assert sorted(item["title"] for item in items) == ["Budget", "Pricing"]  # one each
        # The reader holds no copy: the rep's mailbox shares metadata (the org default).
        seen = {
            item["source"]["google_id"]: item for item in await emails(timeline, reader, lead["id"])
        }
        budget = seen[only_rep[rep.principal.email]["id"]]
        assert budget["hidden"]["reason"] == "mailbox_metadata_only"
        assert budget["title"] != "Budget"
        assert budget["summary"] is None
        for level, reason in (("subject", "mailbox_subject_only"), ("full", None)):
            changed = await gmail.patch(
                "/api/gmail/mailbox", json={"sharing": level}, headers=rep.headers
            )
            assert changed.status_code == 200
            shown = await eventually(
                lambda: emails(timeline, reader, lead["id"]),
                until=lambda found, r=reason: any(
                    i["title"] == "Budget" and (i["hidden"] or {}).get("reason") == r for i in found
                ),
            )
            assert shown
        for outsider in (other_team, stranger):
            refused = await timeline.get(
                f"/api/timeline/lead/{lead['id']}", headers=outsider.headers
            )
            assert refused.status_code == 404

        # Deleted from one mailbox: still the other's. From both: it leaves the timeline.
        await google.admin(
            "DELETE", f"/gmail/{rep.principal.email}/messages/{both[rep.principal.email]['id']}"
        )
        await google.admin(
            "DELETE",
            f"/gmail/{manager.principal.email}/messages/{both[manager.principal.email]['id']}",
        )
        remaining = await eventually(
            lambda: emails(timeline, rep, lead["id"]),
            until=lambda found: [i["title"] for i in found] == ["Budget"],
        )
        assert len(remaining) == 1
