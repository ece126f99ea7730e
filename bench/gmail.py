"""Gmail mailbox sync: the gmail service's history sync against a raw loop of the same calls.

One round puts ``messages`` new messages in a mailbox through the emulator's admin API (not
timed), then times reading them:

- **raw loop**: google-api-python-client against the emulator, nothing else: ``history.list``
  from the mailbox's last ``historyId`` (every page), then ``messages.get`` (``format=raw``) of
  each message added, one after the other, as the service calls them.
- **service**: the gmail service's own history sync (``MailboxSync.sync``) of a connected
  mailbox, in the bench process with the service's lifespan running (its outbox relay
  publishing to the bench's broker prefix): the same calls through the Google service kit, each
  message parsed, matched, written to the mirror and announced in the outbox, and the mailbox's
  ``historyId`` stored. The service paces a mailbox's calls to Gmail's 250 quota units a second;
  the bench lifts that pacing (a wait for Google's quota, not work), and says so in its settings.

``python -m bench.gmail [--messages N] [--rounds N]`` runs this phase alone (the emulator on a
free ``PORT_BASE``, the database ``DATABASE_URL`` names), for looking at the sync on its own;
``make bench`` runs it last, after the other phases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import uvloop
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from sqlalchemy import text

from bench.stack import make_stack
from gmail_service.app import build_app
from gmail_service.repository import GmailRepository
from gmail_service.settings import GmailSettings
from gmail_service.sync import MailboxSync
from pipedesk_common.app import ServiceContext, running_context
from pipedesk_common.google.credentials import CredentialsProvider, GoogleUser
from pipedesk_common.google.scopes import PRODUCT_SCOPES
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.settings import DEFAULT_AMQP_URL

SENDER = "buyer@customer.example"
UNPACED = 1e9  # quota units a second: no pacing wait within a bench round


@dataclass
class SyncRound:
    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds


class EmulatorTokens:
    """Access tokens minted by the emulator for the mailbox's address (the accounts service's
    part, which the phase does not measure)."""

    def __init__(self, admin: httpx.AsyncClient) -> None:
        self.admin = admin
        self.tokens: dict[str | None, str] = {}

    async def token(self, email: str, scopes: Sequence[str]) -> str:
        found = self.tokens.get(email)
        if found is None:
            answer = await self.admin.post(
                "/tokens", json={"email": email, "scopes": list(scopes), "lifetime_seconds": 86400}
            )
            answer.raise_for_status()
            found = self.tokens[email] = answer.json()["access_token"]
        return found

    async def credentials(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        assert user.email is not None
        return Credentials(token=await self.token(user.email, scopes))  # type: ignore[no-untyped-call]

    async def refreshed(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        self.tokens.pop(user.email, None)
        return await self.credentials(user, scopes)


class GmailSync:
    """Both variants, each on a mailbox of its own (see the module docstring)."""

    def __init__(self, emulator_url: str, settings: dict[str, Any], messages: int) -> None:
        self.emulator_url = emulator_url
        self.settings = settings
        self.messages = messages
        self.sequence = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[GmailSync]:
        async with httpx.AsyncClient(
            base_url=self.emulator_url + "/_emulator", timeout=30
        ) as admin:
            self.admin = admin
            self.tokens = EmulatorTokens(admin)

            def credentials(_context: ServiceContext) -> CredentialsProvider:
                return self.tokens

            settings = GmailSettings(
                **self.settings,
                google_root_url=self.emulator_url + "/",
                jobs_enabled=False,
                consumers_enabled=False,
                pubsub_topic=None,
            )
            app = build_app(settings, credentials=credentials)
            async with app.router.lifespan_context(app):
                self.runtime: MirrorRuntime[Any, GmailSettings] = running_context(app).part(
                    MirrorRuntime
                )
                self.runtime.google.pace(self.runtime.clock, UNPACED, 10**9)
                await self._prepare()
                yield self

    async def _prepare(self) -> None:
        stamp = int(time.time() * 1000)
        self.org, self.user = "bench-gmail-org", f"bench-gmail-{stamp}"
        self.service_address = f"service-{stamp}@bench.example"
        self.raw_address = f"raw-{stamp}@bench.example"
        await self.deliver(self.service_address, 1)
        await self.deliver(self.raw_address, 1)
        async with self.runtime.uow.write() as session:
            mailbox = await GmailRepository(session).ensure_mailbox(
                self.org, self.user, datetime.now(UTC)
            )
            mailbox.user_email, mailbox.connected = self.service_address, True
        self.sync = MailboxSync(self.runtime)
        await self.sync.sync(self.org, self.user)  # the window: from then on, history
        async with self.runtime.uow.read() as session:
            stored = await GmailRepository(session).mailbox(self.org, self.user)
        if stored is None or stored.history_id is None:
            raise RuntimeError("the gmail service's first sync stored no historyId")
        token = await self.tokens.token(self.raw_address, PRODUCT_SCOPES["gmail"])
        document = json.loads(get_static_doc("gmail", "v1"))
        document["rootUrl"] = self.emulator_url + "/"
        credentials = Credentials(token=token)  # type: ignore[no-untyped-call]
        self.client = build_from_document(document, credentials=credentials)
        profile = self.client.users().getProfile(userId="me").execute()
        self.raw_history = str(profile["historyId"])

    async def deliver(self, address: str, count: int) -> None:
        """``count`` new messages from a customer in ``address``'s mailbox, 8 at a time."""
        window = asyncio.Semaphore(8)

        async def one(sequence: int) -> None:
            async with window:
                answer = await self.admin.post(
                    "/gmail/deliver",
                    json={
                        "sender": SENDER,
                        "to": [address],
                        "subject": f"Proposal {sequence}",
                        "text": f"Hello, here is proposal {sequence}.\n" * 20,
                    },
                )
                answer.raise_for_status()

        first = self.sequence + 1
        self.sequence += count
        await asyncio.gather(*(one(sequence) for sequence in range(first, first + count)))

    async def service_round(self) -> SyncRound:
        await self.deliver(self.service_address, self.messages)
        mirrored, announced = await self._counts()
        started = time.perf_counter()
        await self.sync.sync(self.org, self.user)
        seconds = time.perf_counter() - started
        now_mirrored, now_announced = await self._counts()
        if now_mirrored - mirrored != self.messages or now_announced - announced < self.messages:
            raise RuntimeError(
                f"the service's sync mirrored {now_mirrored - mirrored} and announced "
                f"{now_announced - announced} of {self.messages} new messages"
            )
        return SyncRound(self.messages, seconds)

    async def _counts(self) -> tuple[int, int]:
        """The mailbox's mirrored messages, and the events in the service's outbox."""
        async with self.runtime.uow.read() as session:
            mirrored = await session.scalar(
                text(
                    "SELECT count(*) FROM gmail.messages m JOIN gmail.mailboxes b "
                    "ON b.id = m.mailbox_id WHERE b.org_id = :org AND b.user_id = :user"
                ),
                {"org": self.org, "user": self.user},
            )
            announced = await session.scalar(text("SELECT count(*) FROM gmail.outbox"))
        return int(mirrored or 0), int(announced or 0)

    async def raw_round(self) -> SyncRound:
        await self.deliver(self.raw_address, self.messages)
        started = time.perf_counter()
        read = await asyncio.to_thread(self._raw_loop)
        seconds = time.perf_counter() - started
        if read != self.messages:
            raise RuntimeError(f"the raw loop read {read} messages, not {self.messages}")
        return SyncRound(read, seconds)

    def _raw_loop(self) -> int:
        history = self.client.users().history()
        messages = self.client.users().messages()
        token: str | None = None
        read = 0
        newest = self.raw_history
        while True:
            page = history.list(
                userId="me", startHistoryId=self.raw_history, maxResults=100, pageToken=token
            ).execute()
            newest = str(page.get("historyId") or newest)
            for record in page.get("history", []):
                for added in record.get("messagesAdded", []):
                    messages.get(userId="me", id=added["message"]["id"], format="raw").execute()
                    read += 1
            token = page.get("nextPageToken")
            if not token:
                break
        self.raw_history = newest
        return read


async def alone(messages: int, rounds: int) -> None:
    """This phase on its own: a warm-up round, then ``rounds`` of each variant, alternated."""
    database_url = os.environ.get("DATABASE_URL", "")
    if "bench" not in database_url:
        raise SystemExit("DATABASE_URL must name the bench's own database (make bench sets it)")
    stack = make_stack(database_url, os.environ.get("AMQP_URL", DEFAULT_AMQP_URL), None)
    stack.names = ()
    stack.launch("emulator")
    try:
        stack.wait_ready("emulator")
        settings = {
            "port_base": stack.port_base,
            "database_url": database_url,
            "amqp_url": stack.amqp_url,
            "broker_prefix": stack.broker_prefix,
            "broker_queue_expires_ms": int(stack.env["BROKER_QUEUE_EXPIRES_MS"]),
        }
        ratios: list[float] = []
        async with GmailSync(stack.url("emulator"), settings, messages).running() as gmail:
            for number in range(rounds + 1):
                raw, service = await gmail.raw_round(), await gmail.service_round()
                label = f"round {number}" if number else "warm-up"
                print(
                    f"{label}: raw loop {raw.per_second:,.0f} messages/s, service "
                    f"{service.per_second:,.0f} messages/s ({service.seconds / messages * 1000:.1f}"
                    f" ms a message): {service.per_second / raw.per_second:.2f} x",
                    flush=True,
                )
                if number:
                    ratios.append(service.per_second / raw.per_second)
        print(f"median ratio to the raw loop: {statistics.median(ratios):.2f} x")
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gmail", description=__doc__)
    parser.add_argument("--messages", type=int, default=100, help="new messages a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds after the warm-up")
    args = parser.parse_args()
    uvloop.run(alone(args.messages, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
