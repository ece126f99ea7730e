"""The gateway's merged OpenAPI document is what the running system answers: schemathesis sends
every public operation generated requests (every check, stateful links where declared, a fixed
seed, 50 examples per operation) with a token of each role, each role in an org of its own.

The failures it still finds are listed, one per operation, check and status, in
``schemathesis-baseline.json``: answers that depend on what the system holds (a cursor it issued,
a record's version, a key used before…), which no schema states. A failure not listed there fails
this test, and an entry is removed once its failure is fixed (``--baseline-prune``). It runs in
``make test`` beside the rest of the suite, and alone with ``make contract`` (see
docs/development.md#the-published-contract)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import ActingUser, Identity, Users
from pipedesk_testkit.stack import Stack, serve_stack
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
SEED = 20261207
MAX_EXAMPLES = 50
WORKERS = 4
ROLES = ("admin", "manager", "rep", "viewer")
PRODUCTS = ("calendar", "tasks", "drive", "gmail")
# Each role's mailbox holds mail before it is connected: two messages from a customer who is a
# contact on a lead of the role's org (one with an attachment), and one from outside the CRM.
CUSTOMER = "buyer@customer.example"
DELIVERED = (
    {
        "subject": "Pricing",
        "text": "The quote, as discussed.",
        "attachments": {"quote.txt": "1,200"},
    },
    {"subject": "Budget", "text": "The budget is approved."},
)
FIXTURE = "html-only.eml"
# How often a path parameter of Gmail's routes is drawn from the seeded mail's ids rather than
# generated: the read routes answer real mail, and generated ids stay checked beside it.
SEEDED_SHARE = 0.5


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], identity: Identity) -> Iterator[Stack]:
    # The generated requests come far faster than a person's: the buckets must not hide answers.
    limits = {"RATE_LIMIT_DEFAULT": "1000000/60", "RATE_LIMIT_SENSITIVE": "1000000/60"}
    # Each relay is woken by its database's notification as a change commits; its poll, only a
    # fallback, is make run's (1 s), not the suite's 0.2 s, which here (eight relays in one
    # process) spent a fifth of the system's CPU on empty outboxes.
    env = {**service_env, "OUTBOX_POLL_SECONDS": "1"}
    with serve_stack(env, identity, gateway_settings=limits) as system:
        yield system


@dataclass
class SeededMail:
    """What the seeded mailboxes hold, as the API names it: PipeDesk's ids of the messages,
    Gmail's ids of their threads, the attachments' ids, and the leads the customer is on."""

    messages: list[str] = field(default_factory=list)
    with_attachments: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)
    leads: list[str] = field(default_factory=list)


async def _mail_lead(http: httpx.AsyncClient, admin: ActingUser) -> str:
    """A lead of the admin's org whose contact is the customer who writes to its users."""
    contact = await http.post(
        "/api/contacts", json={"name": "Buyer", "emails": [CUSTOMER]}, headers=admin.headers
    )
    assert contact.status_code == 201, contact.text
    lead = await http.post(
        "/api/leads",
        json={"title": "Mail", "contact_ids": [contact.json()["id"]]},
        headers=admin.headers,
    )
    assert lead.status_code == 201, lead.text
    return str(lead.json()["id"])


async def _fill_mailbox(google: GoogleStack, address: str) -> list[str]:
    """The mailbox's mail (through the emulator's admin API); its threads' Gmail ids."""
    threads = []
    for spec in DELIVERED:
        sent = await google.admin(
            "POST", "/gmail/deliver", json={"sender": CUSTOMER, "to": [address], **spec}
        )
        threads.append(str(sent.json()[address]["threadId"]))
    seeded = await google.admin(
        "POST", f"/gmail/{address}/messages", json={"fixture": FIXTURE, "label_ids": ["INBOX"]}
    )
    threads.append(str(seeded.json()["threadId"]))
    return threads


async def _read_mail(
    http: httpx.AsyncClient, user: ActingUser, threads: list[str], seeded: SeededMail
) -> None:
    """Wait until the mailbox's sync has mirrored every thread, and note what it holds."""
    for thread in threads:
        answer = await eventually(
            lambda thread=thread: http.get(f"/api/gmail/threads/{thread}", headers=user.headers),
            until=lambda answer: answer.status_code == 200,
            within=120,
        )
        seeded.threads.append(thread)
        for message in answer.json()["messages"]:
            seeded.messages.append(message["id"])
            if message["attachments"]:
                seeded.with_attachments.append(message["id"])
                seeded.attachments += [part["id"] for part in message["attachments"]]


def role_users(stack: Stack, identity: Identity) -> tuple[dict[str, ActingUser], SeededMail]:
    """A user per role, each in an org of its own whose Drive root is set, each connected to
    Google for Calendar, Tasks, Drive and Gmail (which connects their mailbox, holding mail from
    a contact on a lead of their org, synced before the run starts); the admin's teammate too."""
    acting: dict[str, ActingUser] = {}
    admins: dict[str, ActingUser] = {}
    for role in ROLES:
        org = Users(identity.minter)
        acting[role] = org.make(role, teams=("team-a",))
        admins[role] = acting[role] if role == "admin" else org.make("admin")
        if role == "admin":
            # The admin's teammate, whom the run never acts as: their mail, shared in full and on
            # the admin's lead, stays readable whatever the run does to the admin's own mailbox
            # (disconnecting it, its mail then removed under the org's settings).
            teammate = org.make("rep", teams=("team-a",))
    mailboxes = [*acting.values(), teammate]
    google = GoogleStack(stack.emulator_url, stack.gateway_url, identity.key_dir)
    seeded = SeededMail()

    async def prepare() -> None:
        others = [admins[role] for role in ROLES if role != "admin"]
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
            for user in [*mailboxes, *others]:
                (await http.get("/api/users", headers=user.headers)).raise_for_status()
            for admin in admins.values():
                seeded.leads.append(await _mail_lead(http, admin))
            threads = {
                user.sub: await _fill_mailbox(google, user.principal.email) for user in mailboxes
            }
            for user in [*mailboxes, *others]:
                await google.connect(user, PRODUCTS)
            for admin in admins.values():
                root = await http.put("/api/drive/root", json={}, headers=admin.headers)
                assert root.status_code == 200, root.text
            await eventually(  # once the connection's announcement has connected the mailbox
                lambda: http.patch(
                    "/api/gmail/mailbox", json={"sharing": "full"}, headers=teammate.headers
                ),
                until=lambda answer: answer.status_code == 200,
                within=120,
            )
            for user in mailboxes:
                await _read_mail(http, user, threads[user.sub], seeded)
            # The customer's mail to the admin and to their teammate is on the admin's lead
            # (matched through the timeline).
            await eventually(
                lambda: http.get(
                    f"/api/gmail/records/lead/{seeded.leads[0]}/messages",
                    headers=acting["admin"].headers,
                ),
                until=lambda answer: (
                    answer.status_code == 200 and len(answer.json()["items"]) == 2 * len(DELIVERED)
                ),
                within=120,
            )

    asyncio.run(prepare())
    return acting, seeded


def run_config(directory: Path, seeded: SeededMail) -> Path:
    """The run's settings: ``schemathesis.toml``, and for Gmail's routes the seeded mail's ids,
    drawn for a path parameter instead of a generated value ``SEEDED_SHARE`` of the time."""
    dictionaries = {
        "gmail-messages": seeded.messages,
        "gmail-messages-with-attachments": seeded.with_attachments,
        "gmail-threads": seeded.threads,
        "gmail-attachments": sorted(set(seeded.attachments)),
        "gmail-leads": seeded.leads,
    }
    config = [(HERE / "schemathesis.toml").read_text()]
    config += [
        f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n"
        for name, values in dictionaries.items()
    ]

    def drawn(path_regex: str, **parameters: str) -> str:
        bound = ", ".join(
            f'"path.{name}" = {{ dictionary = "{dictionary}", probability = {SEEDED_SHARE} }}'
            for name, dictionary in parameters.items()
        )
        return f"[[operations]]\ninclude-path-regex = '{path_regex}'\nparameters = {{ {bound} }}\n"

    attachments = r"^/api/gmail/messages/\{message_id\}/attachments/"
    config.append(
        drawn(
            attachments,
            message_id="gmail-messages-with-attachments",
            attachment_id="gmail-attachments",
        )
    )
    config.append(
        "# Every other Gmail route\n"
        + drawn(
            r"^/api/gmail/(?!messages/\{message_id\}/attachments/)",
            message_id="gmail-messages",
            thread_id="gmail-threads",
            record_id="gmail-leads",
        )
    )
    path = directory / "schemathesis.toml"
    path.write_text("\n".join(config))
    return path


def test_every_operation_answers_as_its_published_contract_says(
    stack: Stack, identity: Identity, tmp_path: Path
) -> None:
    acting, seeded = role_users(stack, identity)
    auth = tmp_path / "auth.json"
    auth.write_text(
        json.dumps(
            {
                "auth": [
                    {
                        "name": role,
                        "fixedHeaders": [
                            {"name": "Authorization", "value": f"Bearer {user.token}"}
                        ],
                    }
                    for role, user in acting.items()
                ]
            }
        )
    )
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--no-color",
        "--config-file",
        str(run_config(tmp_path, seeded)),
        "run",
        f"{stack.gateway_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        # Several requests in flight: while the system answers one, schemathesis draws the
        # next ones (hooks.py keeps its threads from parsing source at once).
        "--workers",
        str(WORKERS),
        # Beside the rest of make test on two cores an answer may take longer than schemathesis'
        # 10 s default, which it counts as an error of the run; past the gateway's own read
        # timeout (15 s), every request gets its answer, a documented 504 at worst.
        "--request-timeout",
        "30",
        "--baseline",
        str(HERE / "schemathesis-baseline.json"),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        cwd=tmp_path,  # its .hypothesis and .schemathesis folders stay out of the repository
        env={
            **os.environ,
            "PIPEDESK_CONTRACT_AUTH": str(auth),
            # A fresh Idempotency-Key per request (see hooks.py).
            "SCHEMATHESIS_HOOKS": str(HERE / "hooks.py"),
            "SCHEMATHESIS_TELEMETRY": "false",
        },
    )
    assert result.returncode == 0, result.stdout[-25000:] + result.stderr[-3000:]
