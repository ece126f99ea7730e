"""Sending and replying through the real client against the emulator: a message is sent once
whatever is retried or lost, only from the caller's own address, within Gmail's size, in the
thread it answers, linked to the records the caller may read; the automation service's send."""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import email.utils
import json
import os
import secrets
from datetime import UTC, datetime
from email.message import Message
from typing import Any
from uuid import uuid4

import httpx
import pytest
from joserfc.jwk import RSAKey

from gmail_service.compose import reply_subject
from pipedesk_common.auth import Role
from pipedesk_common.google import scopes_for
from pipedesk_testkit.identities import ActingUser, Users

pytestmark = pytest.mark.asyncio
# Outside: a domain no other test's mail gives an emulated mailbox (the emulator is shared).
CUSTOMER = f"buyer@customer-{secrets.token_hex(4)}.example"
# Mail delivered by the emulator's admin API makes its sender's domain an emulated one.
COUNSEL = "counsel@counsel.example"
SEND = "gmail.users.messages.send"


def keyed(user: ActingUser, key: str | None = None) -> dict[str, str]:
    return {**user.headers, "Idempotency-Key": key or secrets.token_hex(8)}


async def outbound(stack: Any, sender: ActingUser, recipient: str = CUSTOMER) -> list[Message]:
    """The copies of ``sender``'s mail to ``recipient`` (outside the emulated mailboxes), oldest
    first."""
    sent = (await stack.google.admin("GET", "/gmail/outbound")).json()
    return [
        email.message_from_bytes(base64.urlsafe_b64decode(mail["raw"]), policy=email.policy.default)
        for mail in sent
        if mail["recipient"] == recipient and mail["sender"] == sender.principal.email
    ]


async def sends(stack: Any, user: ActingUser) -> list[dict[str, Any]]:
    return list(await stack.calls(user, SEND))


async def mirrored_id(stack: Any, google_id: str) -> str:
    found = await stack.scalar("SELECT id FROM gmail.messages WHERE google_id = :g", g=google_id)
    return str(found)


async def test_a_send_retried_with_the_same_key_is_one_message(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        body = {"to": [CUSTOMER], "subject": "Quote", "text": "Attached."}
        headers = keyed(rep)
        first = await service.client.post("/api/gmail/messages", json=body, headers=headers)
        assert first.status_code == 201, first.text
        again = await service.client.post("/api/gmail/messages", json=body, headers=headers)
        assert again.status_code == 200
        assert again.json() == first.json()
        other = await service.client.post(
            "/api/gmail/messages", json={**body, "subject": "Other"}, headers=headers
        )
        assert other.status_code == 422
        assert other.json()["errors"][0]["field"] == "header.idempotency-key"
        sent = [
            m for m in await stack.google_mailbox(rep.principal.email) if "SENT" in m["labelIds"]
        ]
        assert len(sent) == 1
        assert sent[0]["messageId"] == first.json()["rfc822_message_id"]
        assert len(await outbound(stack, rep)) == 1
        assert len(await sends(stack, rep)) == 1


async def test_sending_and_replying_need_a_pipedesk_token(stack: Any) -> None:
    async with stack.start(pubsub_topic=None) as service:
        for path in ("/api/gmail/messages", f"/api/gmail/messages/{uuid4()}/reply"):
            answer = await service.client.post(
                path, json={"to": [CUSTOMER]}, headers={"Idempotency-Key": "k"}
            )
            assert answer.status_code == 401, path


async def test_bad_input_names_the_field(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        for body, field in (
            ({"to": ["not an address"]}, "body.to.0"),
            ({"to": [CUSTOMER], "subject": "two\nlines"}, "body.subject"),
            ({"to": [CUSTOMER], "surprise": True}, "body.surprise"),
            ({"subject": "nobody"}, "body.to"),
        ):
            answer = await service.client.post("/api/gmail/messages", json=body, headers=keyed(rep))
            assert answer.status_code == 422, body
            assert answer.json()["errors"][0]["field"] == field, answer.text
        unknown = [("elsewhere", (None, "x", "text/plain"))]
        answer = await service.client.post("/api/gmail/messages", files=unknown, headers=keyed(rep))
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "body.elsewhere"
        assert await sends(stack, rep) == []


async def test_an_address_is_one_every_header_reads_back_as_written(
    stack: Any, users: Users
) -> None:
    """Addresses joined in one header must parse back one by one: an address that is not a
    dot-atom (a lone dot, quotes, whitespace around it) is refused naming it, before Google;
    one with the rarer atom characters is sent to as written."""
    rep = users.make(Role.REP, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        for bcc in (
            [".@x.example", CUSTOMER],
            ['"quoted"@x.example', CUSTOMER],
            [" padded@x.example", CUSTOMER],
            ["a..b@x.example", CUSTOMER],
        ):
            answer = await service.client.post(
                "/api/gmail/messages", json={"bcc": bcc}, headers=keyed(rep)
            )
            assert answer.status_code == 422, (bcc, answer.text)
            assert answer.json()["errors"][0]["field"] == "body.bcc.0", answer.text
        assert await sends(stack, rep) == []
        rare = "O'Neil+{deals}#1@" + CUSTOMER.partition("@")[2]
        answer = await service.client.post(
            "/api/gmail/messages", json={"to": [CUSTOMER], "bcc": [rare]}, headers=keyed(rep)
        )
        assert answer.status_code == 201, answer.text
        assert len(await outbound(stack, rep, rare.lower())) == 1
        assert len(await outbound(stack, rep)) == 1


async def test_the_idempotency_key_is_required(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        answer = await service.client.post(
            "/api/gmail/messages", json={"to": [CUSTOMER]}, headers=rep.headers
        )
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "header.idempotency-key"
        assert await sends(stack, rep) == []


@pytest.mark.parametrize(
    "fault", [{"status": 503}, {"status": 0, "drop": True}], ids=["failed", "cut-off"]
)
async def test_a_send_whose_answer_was_lost_after_gmail_stored_it_is_one_message(
    stack: Any, users: Users, fault: dict[str, Any]
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        await stack.google.admin(
            "POST", "/faults", json={"api_method": SEND, "after_store": True, **fault}
        )
        answer = await service.client.post(
            "/api/gmail/messages", json={"to": [CUSTOMER], "subject": "Lost"}, headers=keyed(rep)
        )
        assert answer.status_code == 201, answer.text
        sent = [
            m for m in await stack.google_mailbox(rep.principal.email) if "SENT" in m["labelIds"]
        ]
        assert [m["id"] for m in sent] == [answer.json()["google_id"]]
        assert len(await sends(stack, rep)) == 1  # looked up by its Message-ID, not sent again
        lookups = await stack.calls(rep, "gmail.users.messages.list")
        assert any("rfc822msgid:" in call["query"].get("q", "") for call in lookups)
        assert len(await outbound(stack, rep)) == 1


async def test_a_retry_of_a_send_that_died_after_asking_gmail_looks_before_sending(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        # Gmail stores the message, its answer is lost, and the lookup cannot be made either.
        await stack.google.admin(
            "POST", "/faults", json={"api_method": SEND, "status": 503, "after_store": True}
        )
        await stack.google.admin(
            "POST",
            "/faults",
            json={"api_method": "gmail.users.messages.list", "status": 503, "count": 50},
        )
        headers = keyed(rep)
        body = {"to": [CUSTOMER], "subject": "Once"}
        failed = await service.client.post("/api/gmail/messages", json=body, headers=headers)
        assert failed.status_code == 503
        await stack.google.admin("DELETE", "/faults")
        retried = await service.client.post("/api/gmail/messages", json=body, headers=headers)
        assert retried.status_code == 201, retried.text
        assert len(await sends(stack, rep)) == 1
        assert len(await outbound(stack, rep)) == 1


async def test_a_reply_to_all_stays_in_the_thread_with_the_right_headers(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    address = rep.principal.email
    colleague = "colleague@" + CUSTOMER.rpartition("@")[2]
    incoming = email.message.EmailMessage()
    incoming["From"] = f"Buyer <{CUSTOMER}>"
    incoming["To"] = address
    incoming["Cc"] = colleague
    incoming["Subject"] = "Quote"
    incoming["Message-ID"] = "<q-1@customer.example>"
    incoming["Date"] = email.utils.format_datetime(datetime.now(UTC))
    incoming.set_content("Our quote.")
    # Only the rep's mailbox is emulated: the customer's side is outside.
    seeded = await stack.seed_raw(address, incoming.as_bytes())
    delivered = {address: seeded}
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        original = await mirrored_id(stack, delivered[address]["id"])
        answer = await service.client.post(
            f"/api/gmail/messages/{original}/reply",
            json={"reply_all": True, "text": "Thanks!"},
            headers=keyed(rep),
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["thread_id"] == delivered[address]["threadId"]
        [reply] = await outbound(stack, rep)
        assert reply["In-Reply-To"] == "<q-1@customer.example>"
        assert reply["References"] == "<q-1@customer.example>"
        assert reply["Subject"] == "Re: Quote"
        assert reply["To"] == CUSTOMER
        assert reply["Cc"] == colleague  # everyone else, never the sender's own address
        assert len(await outbound(stack, rep, colleague)) == 1
        # A reply to the reply: one "Re:", the references growing.
        sent_copy = await mirrored_id(stack, answer.json()["google_id"])
        again = await service.client.post(
            f"/api/gmail/messages/{sent_copy}/reply", json={"text": "And"}, headers=keyed(rep)
        )
        assert again.status_code == 201, again.text
        assert again.json()["thread_id"] == delivered[address]["threadId"]
        second = (await outbound(stack, rep))[-1]
        assert second["Subject"] == "Re: Quote"
        assert second["To"] == CUSTOMER  # a reply to one's own message goes to its recipients
        assert second["References"].split() == ["<q-1@customer.example>", reply["Message-ID"]]


async def test_a_reply_to_another_mailboxs_copy_is_sent_in_your_own_thread(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    delivered = await stack.deliver(
        COUNSEL,
        [rep.principal.email, manager.principal.email],
        subject="Terms",
        message_id="<terms-1@customer.example>",
    )
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        await stack.mailbox(service, manager)
        reps_copy = await mirrored_id(stack, delivered[rep.principal.email]["id"])
        answer = await service.client.post(
            f"/api/gmail/messages/{reps_copy}/reply",
            json={"text": "Agreed"},
            headers=keyed(manager),
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["sender"] == manager.principal.email
        assert answer.json()["thread_id"] == delivered[manager.principal.email]["threadId"]
        assert await sends(stack, rep) == []


async def test_a_reply_subject_is_never_doubled() -> None:
    assert reply_subject("Quote") == "Re: Quote"
    assert reply_subject("RE: Quote") == "RE: Quote"
    assert reply_subject("Aw: Angebot") == "Aw: Angebot"
    assert reply_subject("Regarding the quote") == "Re: Regarding the quote"


async def test_only_your_own_address_sends(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    colleague = users.make(Role.ADMIN, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        await stack.mailbox(service, colleague)
        answer = await service.client.post(
            "/api/gmail/messages",
            json={"from": colleague.principal.email, "to": [CUSTOMER]},
            headers=keyed(rep),
        )
        assert answer.status_code == 403
        assert answer.json()["errors"][0]["field"] == "body.from"
        own = await service.client.post(
            "/api/gmail/messages",
            json={"from": rep.principal.email.upper(), "to": [CUSTOMER]},
            headers=keyed(rep),
        )
        assert own.status_code == 201, own.text
        assert len(await sends(stack, rep)) == 1
        assert await sends(stack, colleague) == []


async def test_a_message_over_gmails_limit_is_413_before_any_google_call(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        files = {
            "message": (
                None,
                json.dumps({"to": [CUSTOMER], "subject": "Big"}),
                "application/json",
            ),
            "attachments": ("big.bin", b"\0" * (30 * 1024 * 1024), "application/octet-stream"),
        }
        answer = await service.client.post("/api/gmail/messages", files=files, headers=keyed(rep))
        assert answer.status_code == 413
        assert answer.json()["errors"][0]["code"] == "message_too_large"
        over_body = {
            "message": (None, json.dumps({"to": [CUSTOMER]}), "application/json"),
            "attachments": ("huge.bin", b"\0" * (36 * 1024 * 1024), "application/octet-stream"),
        }
        refused = await service.client.post(
            "/api/gmail/messages", files=over_body, headers=keyed(rep)
        )
        assert refused.status_code == 413
        assert await sends(stack, rep) == []


async def test_uploaded_attachments_arrive_byte_identical(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    content = os.urandom(300_000) + b"\r\n--not-a-boundary\r\n" + os.urandom(1000)
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        files = [
            (
                "message",
                (None, json.dumps({"to": [CUSTOMER], "text": "See"}), "application/json"),
            ),
            ("attachments", ("quote.pdf", content, "application/pdf")),
            ("attachments", ("notes.txt", b"plain notes", "text/plain")),
        ]
        answer = await service.client.post("/api/gmail/messages", files=files, headers=keyed(rep))
        assert answer.status_code == 201, answer.text
        [received] = await outbound(stack, rep)
        parts = {part.get_filename(): part for part in received.iter_attachments()}
        assert parts["quote.pdf"].get_content() == content
        assert parts["quote.pdf"].get_content_type() == "application/pdf"
        assert parts["notes.txt"].get_content() == "plain notes"


async def test_another_orgs_user_and_a_teammate_cannot_reply_to_a_message_not_theirs(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    stranger = users.other_org().make(Role.ADMIN)
    delivered = await stack.deliver(COUNSEL, [rep.principal.email], subject="Private")
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        await stack.mailbox(service, manager)
        await stack.mailbox(service, stranger)
        original = await mirrored_id(stack, delivered[rep.principal.email]["id"])
        for intruder in (manager, stranger):
            answer = await service.client.post(
                f"/api/gmail/messages/{original}/reply",
                json={"text": "Mine now"},
                headers=keyed(intruder),
            )
            assert answer.status_code == 404, answer.text
            assert await sends(stack, intruder) == []


async def test_linking_a_record_needs_read_access_and_any_role_sends_from_its_mailbox(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    other_rep = users.make(Role.REP, teams=["t2"])
    viewer = users.make(Role.VIEWER, teams=["t1"])
    stranger = users.other_org().make(Role.ADMIN)
    async with stack.start(pubsub_topic=None) as service:
        lead = await stack.lead(rep)
        for user in (other_rep, viewer, stranger):
            await stack.mailbox(service, user)
        link = [{"type": "lead", "id": lead}]
        for intruder in (other_rep, stranger):
            answer = await service.client.post(
                "/api/gmail/messages",
                json={"to": [CUSTOMER], "links": link},
                headers=keyed(intruder),
            )
            assert answer.status_code == 404, answer.text
            assert answer.json()["errors"][0]["field"] == "body.links.0"
            assert await sends(stack, intruder) == []
        # A viewer sends from its own mailbox, linked to a record of its team it may read.
        sent = await service.client.post(
            "/api/gmail/messages", json={"to": [CUSTOMER], "links": link}, headers=keyed(viewer)
        )
        assert sent.status_code == 201, sent.text
        assert sent.json()["links"] == [{"type": "lead", "id": lead, "hidden": False}]
        # Without a connected mailbox there is nothing to send from.
        unconnected = users.make(Role.ADMIN, teams=["t1"])
        missing = await service.client.post(
            "/api/gmail/messages", json={"to": [CUSTOMER]}, headers=keyed(unconnected)
        )
        assert missing.status_code == 404


async def test_a_sent_message_is_on_its_record_at_once_and_one_item_after_the_sync(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        lead = await stack.lead(rep)
        answer = await service.client.post(
            "/api/gmail/messages",
            json={"to": [CUSTOMER], "subject": "Proposal", "links": [{"type": "lead", "id": lead}]},
            headers=keyed(rep),
        )
        assert answer.status_code == 201, answer.text
        sent = answer.json()
        [created] = await stack.announced("gmail.message.created", rep)
        assert created["id"] == sent["message_id"]
        assert created["timeline"]["links"] == [{"type": "lead", "id": lead}]
        assert created["timeline"]["identity"] == sent["rfc822_message_id"].strip("<>")
        assert created["timeline"]["title"] == "Proposal"
        await stack.sync(service, rep)
        mirror = await stack.mirror(rep)
        assert list(mirror) == [sent["google_id"]]
        assert await stack.announced("gmail.message.created", rep) == [created]
        updates = await stack.announced("gmail.message.updated", rep)
        assert all(update["id"] == sent["message_id"] for update in updates)
        assert all(u["timeline"]["links"] == [{"type": "lead", "id": lead}] for u in updates)


async def test_the_automation_service_sends_once_per_key_from_a_named_user_or_the_orgs_sender(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    admin = users.make(Role.ADMIN, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        org = rep.principal.org_id
        body = {"org_id": org, "sender_id": rep.sub, "key": "rule-1:lead-9", "to": [CUSTOMER]}
        first = await service.internal("POST", "/internal/gmail/messages", json=body)
        assert first.status_code == 201, first.text
        assert first.json()["sender"] == rep.principal.email
        again = await service.internal("POST", "/internal/gmail/messages", json=body)
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        assert len(await sends(stack, rep)) == 1
        # No sender named and none configured: refused, naming the field.
        unnamed = {"org_id": org, "key": "rule-2", "to": [CUSTOMER]}
        refused = await service.internal("POST", "/internal/gmail/messages", json=unnamed)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "body.sender_id"
        stranger = users.other_org().make(Role.ADMIN)
        await stack.mailbox(service, stranger)
        unknown = await service.client.put(
            "/api/gmail/settings",
            json={"automation_sender_id": stranger.sub},
            headers=admin.headers,
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"] == "body.automation_sender_id"
        settings = await service.client.put(
            "/api/gmail/settings", json={"automation_sender_id": rep.sub}, headers=admin.headers
        )
        assert settings.status_code == 200, settings.text
        by_default = await service.internal("POST", "/internal/gmail/messages", json=unnamed)
        assert by_default.status_code == 201, by_default.text
        assert by_default.json()["sender"] == rep.principal.email
        # A user of another org is no sender of this one.
        across = {**body, "sender_id": stranger.sub, "key": "rule-3"}
        assert (
            await service.internal("POST", "/internal/gmail/messages", json=across)
        ).status_code == 422
        assert await sends(stack, stranger) == []
        # Nor is another org's record a link of this org's mail.
        elsewhere = await stack.lead(stranger)
        linked = {**body, "key": "rule-4", "links": [{"type": "lead", "id": elsewhere}]}
        refused = await service.internal("POST", "/internal/gmail/messages", json=linked)
        assert refused.status_code == 404
        assert refused.json()["errors"][0]["field"] == "body.links.0"
        assert len(await sends(stack, rep)) == 2


async def test_the_internal_send_refuses_user_tokens_and_other_services(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.ADMIN, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        body = {"org_id": rep.principal.org_id, "sender_id": rep.sub, "key": "k", "to": [CUSTOMER]}
        as_user = await service.client.post(
            "/internal/gmail/messages", json=body, headers=rep.headers
        )
        assert as_user.status_code == 401
        for caller in ("drive", "crm"):
            refused = await service.internal(
                "POST", "/internal/gmail/messages", caller=caller, json=body
            )
            assert refused.status_code == 403
        assert await sends(stack, rep) == []


async def test_the_orgs_automation_sender_sends_through_domain_wide_delegation(
    stack: Any, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The accounts service asks the CRM's directory whom a delegated token may be for.
    monkeypatch.setenv("CRM_URL", stack.crm_url)
    admin = users.make(Role.ADMIN)
    robot = users.make(Role.REP, teams=["t1"])  # never connected Google: delegation acts for it
    key = RSAKey.generate_key(2048, private=True)
    domain = robot.principal.email.split("@")[1]
    account = f"pipedesk-{secrets.token_hex(4)}@project.iam.gserviceaccount.com"
    async with stack.start(pubsub_topic=None) as service:
        for user in (admin, robot):
            (await stack.crm.get("/api/users", headers=user.headers)).raise_for_status()
        registered = await stack.google.admin(
            "POST",
            "/service-accounts",
            json={"email": account, "public_jwk": key.as_dict(private=False)},
        )
        client_id = registered.json()["client_id"]
        await stack.google.admin(
            "PUT",
            f"/domains/{domain}/delegation/{client_id}",
            json={"scopes": list(scopes_for(["gmail"]))},
        )
        key_file = {
            "type": "service_account",
            "client_email": account,
            "client_id": client_id,
            "private_key_id": "k-" + key.thumbprint()[:12],
            "private_key": key.as_pem(private=True).decode(),
        }
        async with httpx.AsyncClient(base_url=stack.google.accounts_url) as accounts:
            configured = await accounts.put(
                "/api/accounts/google/delegation",
                json={"domain": domain, "service_account_key": key_file},
                headers=admin.headers,
            )
        assert configured.status_code == 200, configured.text
        settings = await service.client.put(
            "/api/gmail/settings", json={"automation_sender_id": robot.sub}, headers=admin.headers
        )
        assert settings.status_code == 200, settings.text
        body = {"org_id": admin.principal.org_id, "key": "welcome:1", "to": [CUSTOMER]}
        answer = await service.internal("POST", "/internal/gmail/messages", json=body)
        assert answer.status_code == 201, answer.text
        sent = answer.json()
        assert sent["sender"] == robot.principal.email
        assert sent["message_id"] is None  # a mailbox PipeDesk does not sync: no mirror row
        [copy] = await stack.google_mailbox(robot.principal.email)
        assert copy["messageId"] == sent["rfc822_message_id"]
        assert copy["labelIds"] == ["SENT"]
