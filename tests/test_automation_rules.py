"""An org's automation rules, run by the automation service on gmail's message events: a rule
saves the attachments of mail on a deal in one of its stages into the deal's folder, filtered by
sender domain, type and size, once, skipping content the folder already holds; each saved file
says on the timeline which email it came from. Only admins manage rules; another org's user
finds none."""

import secrets
from typing import Any

import httpx
import pytest

from automation_service.app import build_app as build_automation
from automation_service.settings import AutomationSettings
from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import serve_in_thread
from pipedesk_testkit.service import World
from pipedesk_testkit.waiting import eventually
from tests.test_automation_attachments import automation_app, mirrored_message, stacks

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]
__all__ = ["automation_app"]  # a fixture: the tests take it by name

DOMAIN = f"customer-{secrets.token_hex(4)}.example"
BUYER = f"buyer@mail.{DOMAIN}"
FILES = {
    "quote.txt": "the quote",
    "terms.txt": "the terms",
    "notes.md": "notes, not a wanted type",
    "annex.txt": "x" * 3000,  # over the rule's size
}


async def test_rules_are_the_admins_and_the_orgs_own(
    world: World, automation_app: OpenService, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    rep = users.make(Role.REP, teams=["t1"])
    viewer = users.make(Role.VIEWER, teams=["t1"])
    stranger = users.other_org().make(Role.ADMIN)
    rule = {"name": "Quotes", "record_type": "deal", "stages": ["proposal"]}
    async with automation_app() as automation:
        for user in (viewer, rep):
            refused = await automation.post(
                "/api/automation/rules", json=rule, headers=user.headers
            )
            assert refused.status_code == 403, refused.text
        made = await automation.post("/api/automation/rules", json=rule, headers=admin.headers)
        assert made.status_code == 201, made.text
        created = made.json()
        assert created["acting_user_id"] == admin.sub
        assert made.headers["Location"] == f"/api/automation/rules/{created['id']}"
        path = f"/api/automation/rules/{created['id']}"

        # Anyone of the org reads it; another org's admin finds nothing to read or change.
        assert (await automation.get(path, headers=viewer.headers)).status_code == 200
        listed = await automation.get("/api/automation/rules", headers=stranger.headers)
        assert listed.json() == {"items": [], "next_cursor": None}
        ours = await automation.get("/api/automation/rules", headers=viewer.headers)
        assert [rule["id"] for rule in ours.json()["items"]] == [created["id"]]
        assert (await automation.get(path, headers=stranger.headers)).status_code == 404
        patched = await automation.patch(path, json={"name": "x"}, headers=stranger.headers)
        assert patched.status_code == 404
        assert (await automation.delete(path, headers=stranger.headers)).status_code == 404
        for user in (viewer, rep):
            assert (await automation.patch(path, json={}, headers=user.headers)).status_code == 403
            assert (await automation.delete(path, headers=user.headers)).status_code == 403
            jobs = await automation.get(f"{path}/jobs", headers=user.headers)
            assert jobs.status_code == 403

        # Bad input names its field.
        for body, field in (
            ({**rule, "record_type": "lead"}, "body.stages"),
            ({**rule, "min_size": -1}, "body.min_size"),
            ({**rule, "sender_domains": ["not a domain"]}, "body.sender_domains.0"),
            ({**rule, "file_types": ["a/b/c"]}, "body.file_types.0"),
            ({**rule, "stages": ["closing"]}, "body.stages.0"),
        ):
            bad = await automation.post("/api/automation/rules", json=body, headers=admin.headers)
            assert bad.status_code == 422, bad.text
            assert bad.json()["errors"][0]["field"] == field, bad.text
        bad = await automation.patch(path, json={"name": None}, headers=admin.headers)
        assert bad.status_code == 422, bad.text
        assert bad.json()["errors"][0]["field"] == "body.name"

        changed = await automation.patch(
            path, json={"stages": None, "enabled": False}, headers=admin.headers
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["stages"], changed.json()["enabled"]) == (None, False)
        assert changed.json()["version"] == 2
        assert (await automation.delete(path, headers=admin.headers)).status_code == 204
        assert (await automation.get(path, headers=admin.headers)).status_code == 404


async def deal(world: World, owner: Any, title: str, stage: str) -> str:
    answer = await world.crm.post(
        "/api/deals", json={"title": title, "stage": stage}, headers=owner.headers
    )
    assert answer.status_code == 201, answer.text
    deal_id: str = answer.json()["id"]
    return deal_id


async def test_a_rule_saves_a_matched_deals_attachments_once_and_skips_what_the_folder_holds(
    world: World, automation_app: OpenService, users: Users, timeline_url: str
) -> None:
    drive_stack, gmail_stack = stacks(world)
    admin = users.make(Role.ADMIN)
    rep = users.make(Role.REP, teams=["t1"])
    subject = f"Proposal documents {secrets.token_hex(4)}"
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
        # The rep shares their mail in full: the rule's admin reads it at that level.
        shared = await gmail.client.patch(
            "/api/gmail/mailbox", json={"sharing": "full"}, headers=rep.headers
        )
        assert shared.status_code == 200, shared.text
        in_proposal = await deal(world, rep, "Acme expansion", "proposal")
        qualifying = await deal(world, rep, "Acme pilot", "qualification")

        rule = await automation.post(
            "/api/automation/rules",
            json={
                "name": "Proposal documents",
                "record_type": "deal",
                "stages": ["proposal", "negotiation"],
                "sender_domains": [DOMAIN.upper()],
                "file_types": ["txt", "application/pdf"],
                "max_size": 1000,
            },
            headers=admin.headers,
        )
        assert rule.status_code == 201, rule.text
        rule_id = rule.json()["id"]
        assert rule.json()["sender_domains"] == [DOMAIN]
        other_domain = await automation.post(
            "/api/automation/rules",
            json={"name": "Elsewhere", "record_type": "deal", "sender_domains": ["other.example"]},
            headers=admin.headers,
        )
        assert other_domain.status_code == 201, other_domain.text

        # The folder already holds the terms (same content, another name).
        early = await drive.internal(
            "POST",
            f"/internal/records/deal/{in_proposal}/files",
            params={"org_id": rep.principal.org_id, "name": "signed-terms.txt", "key": "early"},
            content=FILES["terms.txt"].encode(),
            headers={"Content-Type": "text/plain"},
        )
        assert early.status_code == 201, early.text

        delivered = await world.google.admin(
            "POST",
            "/gmail/deliver",
            json={
                "sender": BUYER,
                "to": [rep.principal.email],
                "subject": subject,
                "text": "Our documents.",
                "attachments": FILES,
            },
        )
        assert delivered.status_code < 300, delivered.text
        message_id = await mirrored_message(world, gmail, rep, subject)
        for record in (in_proposal, qualifying):
            linked = await gmail.client.post(
                f"/api/gmail/messages/{message_id}/links",
                json={"type": "deal", "id": record},
                headers=rep.headers,
            )
            assert linked.status_code == 201, linked.text

        async def jobs(rule: str) -> list[dict[str, Any]]:
            answer = await automation.get(
                f"/api/automation/rules/{rule}/jobs", headers=admin.headers
            )
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()["items"]
            return found

        [job] = await eventually(
            lambda: jobs(rule_id),
            until=lambda found: len(found) == 1 and found[0]["status"] != "pending",
        )
        assert job["record"] == {"type": "deal", "id": in_proposal}
        assert (job["status"], job["saved"], job["skipped"], job["total"]) == ("done", 1, 1, 2)
        outcome = {item["filename"]: item for item in job["attachments"]}
        assert sorted(outcome) == ["quote.txt", "terms.txt"]  # by type and size
        assert outcome["terms.txt"]["status"] == "skipped"
        assert outcome["terms.txt"]["file_id"] == early.json()["id"]
        assert "already holds the same content" in outcome["terms.txt"]["error"]
        assert outcome["quote.txt"]["status"] == "saved"
        assert await jobs(other_domain.json()["id"]) == []

        # The saved file says where it came from, and so does its timeline item.
        listed = await drive.client.get(
            f"/api/drive/records/deal/{in_proposal}/files", headers=rep.headers
        )
        saved = {item["name"]: item for item in listed.json()["items"]}
        assert sorted(saved) == ["quote.txt", "signed-terms.txt"]
        quote = saved["quote.txt"]
        assert quote["id"] == outcome["quote.txt"]["file_id"]
        assert quote["uploaded_by"] == f"svc:automation:rule:{rule_id}"
        assert quote["origin"]["subject"] == subject
        assert quote["origin"]["rule_id"] == rule_id
        [created] = await eventually(
            lambda: drive_stack.published("drive.file.created", quote["google_id"]),
            until=lambda found: len(found) == 1,
        )
        assert created["timeline"]["summary"].startswith(
            f"Saved from the email “{subject}” from {BUYER} by automation rule {rule_id}"
        )

        # The deal in another stage got nothing; the message's later events (its second link)
        # ran the rule no second time.
        folder = await drive.client.get(
            f"/api/drive/records/deal/{qualifying}/files", headers=rep.headers
        )
        assert folder.status_code == 200, folder.text
        assert folder.json()["items"] == []
        assert len(await jobs(rule_id)) == 1
        uploads = await drive_stack.published("drive.file.created", quote["google_id"])
        assert len(uploads) == 1


async def test_a_deactivated_admins_rules_pause_until_another_admin_takes_them_on(
    world: World, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = users.make(Role.ADMIN)
    successor = users.make(Role.ADMIN)
    for user in (admin, successor):
        (await world.crm.get("/api/users", headers=user.headers)).raise_for_status()
    settings = AutomationSettings(**{**world.service_env, "crm_url": world.crm_url})
    with serve_in_thread(build_automation(settings)) as url:
        monkeypatch.setenv("AUTOMATION_URL", url)
        async with httpx.AsyncClient(base_url=url, timeout=60) as automation:
            made = await automation.post(
                "/api/automation/rules",
                json={"name": "Leads' files", "record_type": "lead"},
                headers=admin.headers,
            )
            assert made.status_code == 201, made.text
            path = f"/api/automation/rules/{made.json()['id']}"

            # The lifecycle's routes answer the CRM only.
            contract = f"/internal/lifecycle/users/{admin.sub}/deactivated"
            body = {"org_id": admin.principal.org_id, "actor_id": successor.sub, "job_id": "j"}
            for caller in ("gmail", "drive"):
                token = world.service_token(caller, "automation")
                refused = await automation.post(
                    contract, json=body, headers={"Authorization": f"Bearer {token}"}
                )
                assert refused.status_code == 403, refused.text

            answer = await world.crm.post(
                f"/api/users/{admin.sub}/deactivate",
                json={"reassign_to": successor.sub},
                headers=successor.headers,
            )
            assert answer.status_code == 201, answer.text
            part = answer.json()["parts"]["automation"]
            assert part["state"] == "done", part
            assert part["ended"] == {"rules": 1, "attachments": 0}

            paused = (await automation.get(path, headers=successor.headers)).json()
            assert paused["enabled"] is True
            assert "deactivated" in (paused["paused_reason"] or "")
            assert paused["acting_user_id"] == admin.sub
            # Called again, the part ends nothing more.
            crm = {"Authorization": f"Bearer {world.service_token('crm', 'automation')}"}
            again = await automation.post(contract, json=body, headers=crm)
            assert again.json()["ended"] == {"rules": 0, "attachments": 0}

            resumed = await automation.patch(path, json={}, headers=successor.headers)
            assert resumed.status_code == 200, resumed.text
            assert resumed.json()["paused_reason"] is None
            assert resumed.json()["acting_user_id"] == successor.sub


async def test_a_rule_saves_the_attachments_of_mail_the_timeline_matched_to_a_lead(
    world: World, automation_app: OpenService, users: Users, timeline_url: str
) -> None:
    drive_stack, gmail_stack = stacks(world)
    admin = users.make(Role.ADMIN)
    rep = users.make(Role.REP, teams=["t1"])
    buyer = f"cfo@{DOMAIN}"
    subject = f"Signed order {secrets.token_hex(4)}"
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
        shared = await gmail.client.patch(
            "/api/gmail/mailbox", json={"sharing": "full"}, headers=rep.headers
        )
        assert shared.status_code == 200, shared.text
        contact = await world.crm.post(
            "/api/contacts", json={"name": "CFO", "emails": [buyer]}, headers=rep.headers
        )
        assert contact.status_code == 201, contact.text
        lead = await world.crm.post(
            "/api/leads",
            json={"title": "Acme order", "contact_ids": [contact.json()["id"]]},
            headers=rep.headers,
        )
        assert lead.status_code == 201, lead.text
        lead_id = lead.json()["id"]
        rule = await automation.post(
            "/api/automation/rules",
            json={"name": "Leads' mail", "record_type": "lead"},
            headers=admin.headers,
        )
        assert rule.status_code == 201, rule.text

        # No link by hand: the timeline matches the sender to the lead's contact.
        delivered = await world.google.admin(
            "POST",
            "/gmail/deliver",
            json={
                "sender": buyer,
                "to": [rep.principal.email],
                "subject": subject,
                "text": "The order.",
                "attachments": {"order.txt": "the order"},
            },
        )
        assert delivered.status_code < 300, delivered.text
        await mirrored_message(world, gmail, rep, subject)

        async def jobs() -> list[dict[str, Any]]:
            answer = await automation.get(
                f"/api/automation/rules/{rule.json()['id']}/jobs", headers=admin.headers
            )
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()["items"]
            return found

        [job] = await eventually(
            jobs, until=lambda found: len(found) == 1 and found[0]["status"] != "pending"
        )
        assert job["record"] == {"type": "lead", "id": lead_id}
        assert (job["status"], job["saved"]) == ("done", 1), job
        listed = await drive.client.get(
            f"/api/drive/records/lead/{lead_id}/files", headers=rep.headers
        )
        assert [item["name"] for item in listed.json()["items"]] == ["order.txt"]
