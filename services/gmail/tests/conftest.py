"""The gmail service under test, with helpers to put mail in emulated mailboxes and read the
mirror and what the service announced."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gmail_service.app import build_app
from gmail_service.models import TABLES
from gmail_service.settings import GmailSettings
from gmail_service.sync import mailbox_key
from pipedesk_common.events import decode_event
from pipedesk_testkit.identities import ActingUser
from pipedesk_testkit.service import RunningService, ServiceUnderTest, World
from pipedesk_testkit.waiting import eventually

PUSH_ACCOUNT = "gmail-push@pipedesk-test.iam.gserviceaccount.com"


class GmailStack(ServiceUnderTest):
    async def mailbox(self, service: RunningService, user: ActingUser) -> dict[str, Any]:
        """Connect ``user``'s Google (Gmail) and their mailbox; its first sync is drained."""
        if service.runtime.settings.pubsub_topic is not None:
            await self.register_topic(service)
        await self.connect(user)
        answer = await service.client.post("/api/gmail/mailbox", headers=user.headers)
        # 200 when the accounts service's announcement of the connection came first.
        assert answer.status_code in (200, 201), answer.text
        await self.sync(service, user)
        found: dict[str, Any] = answer.json()
        return found

    async def register_topic(self, service: RunningService) -> None:
        """The service's Pub/Sub topic at the emulator, pushing to the service's webhook."""
        settings = service.runtime.settings
        project, _, name = settings.pubsub_topic.removeprefix("projects/").partition("/topics/")
        await self.google.admin(
            "PUT",
            f"/pubsub/{project}/topics/{name}",
            json={
                "push_endpoint": service.url + settings.webhook_path,
                "audience": settings.audience,
                "service_account": PUSH_ACCOUNT,
            },
        )

    async def sync(self, service: RunningService, user: ActingUser) -> None:
        """Every mailbox's sync, run to its end: the catch-up job (in the service's own loop),
        then until no sync of the user's mailbox is asked for or running (a background run
        holding it when the job asked runs once more)."""
        await service.run_job("gmail.catch-up")
        key = str(mailbox_key(user.principal.org_id, user.principal.sub))

        async def settled() -> bool:
            busy = await self.rows(
                "SELECT 1 FROM gmail.work_requests "
                "WHERE key = :key AND (pending OR holder IS NOT NULL)",
                key=key,
            )
            return not busy

        await eventually(settled)

    async def deliver(self, sender: str, to: list[str], **spec: Any) -> dict[str, Any]:
        body = {"sender": sender, "to": to, "subject": "Hello", "text": "Hi", **spec}
        found: dict[str, Any] = (
            await self.google.admin("POST", "/gmail/deliver", json=body)
        ).json()
        return found

    async def seed(self, address: str, **spec: Any) -> dict[str, Any]:
        answer = await self.google.admin("POST", f"/gmail/{address}/messages", json=spec)
        found: dict[str, Any] = answer.json()
        return found

    async def seed_raw(self, address: str, raw: bytes, **spec: Any) -> dict[str, Any]:
        return await self.seed(address, raw=base64.urlsafe_b64encode(raw).decode(), **spec)

    async def google_mailbox(self, address: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (
            await self.google.admin("GET", f"/gmail/{address}/messages")
        ).json()
        return found

    async def mirror(self, user: ActingUser) -> dict[str, dict[str, Any]]:
        """The user's live mirrored messages by Gmail id: their labels and Message-ID."""
        rows = await self.rows(
            "SELECT m.google_id, m.label_ids, m.identity, m.subject, m.html_body, m.problems "
            "FROM gmail.messages m JOIN gmail.mailboxes b ON b.id = m.mailbox_id "
            "WHERE b.org_id = :org AND b.user_id = :user AND NOT m.deleted",
            org=user.principal.org_id,
            user=user.principal.sub,
        )
        return {row["google_id"]: row for row in rows}

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        engine = create_async_engine(self.database_url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(text(sql), params)
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()

    async def announced(self, routing_key: str, owner: ActingUser) -> list[dict[str, Any]]:
        """The data of every event of this kind written for ``owner``'s mailbox, oldest first."""
        rows = await self.rows(
            "SELECT body FROM gmail.outbox WHERE routing_key = :key ORDER BY id", key=routing_key
        )
        found = [decode_event(row["body"]).data.model_dump(mode="json") for row in rows]
        return [
            data
            for data in found
            if data.get("owner_id", data.get("user_id")) == owner.principal.sub
        ]


@pytest.fixture
def topic() -> str:
    return f"projects/pipedesk-test/topics/gmail-{secrets.token_hex(4)}"


@pytest.fixture
def stack(world: World, topic: str) -> GmailStack:
    def push_settings(url: str) -> dict[str, Any]:
        return {
            "webhook_url": url + GmailSettings.webhook_path,
            "pubsub_topic": topic,
            "push_service_account": PUSH_ACCOUNT,
            "push_certs_url": world.google.emulator_url + "/oauth2/v1/certs",
        }

    return GmailStack(
        world,
        build_app=build_app,
        settings_class=GmailSettings,
        product="gmail",
        outbox=TABLES.outbox,
        at_url=push_settings,
    )
