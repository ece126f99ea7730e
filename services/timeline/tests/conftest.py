import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import uuid4

import aio_pika
import httpx
import pytest

from pipedesk_common.clock import SystemClock
from pipedesk_common.db import connect_raw
from pipedesk_common.events import Event, encode_event, new_event, registered_types
from pipedesk_common.events.crm import (
    CompanyUpdated,
    ContactUpdated,
    DealAccessChanged,
    DealUpdated,
    LeadAccessChanged,
    LeadUpdated,
)
from pipedesk_common.messaging import Topology
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.waiting import eventually
from timeline_service.app import ITEMS_QUEUE, build_app
from timeline_service.settings import TimelineSettings

BASE_TIME = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def timeline_app(open_service: OpenService) -> OpenService:
    """``async with timeline_app(clock=…, **settings) as client``: the timeline app, in-process."""
    return partial(open_service, build_app, TimelineSettings)


@dataclass(frozen=True)
class RawEvent:
    """An event of a type this process has no contract for, as its producer would send it."""

    id: str
    routing_key: str
    body: bytes


@dataclass
class Feed:
    """Publishes events built from the contracts through the real broker, for one org."""

    env: dict[str, str]
    database_url: str
    org_id: str
    versions: dict[str, int] = field(default_factory=dict)

    def _next(self, key: str) -> int:
        self.versions[key] = self.versions.get(key, 0) + 1
        return self.versions[key]

    async def publish(self, *events: Event[Any] | RawEvent) -> None:
        connection = await aio_pika.connect(self.env["AMQP_URL"])
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await Topology(self.env["BROKER_PREFIX"]).declare_exchange(channel)
            for event in events:
                body = event.body if isinstance(event, RawEvent) else encode_event(event)
                message = aio_pika.Message(body, content_type="application/cloudevents+json")
                await exchange.publish(message, routing_key=event.routing_key)
        finally:
            await connection.close()

    async def processed(self, *events: Event[Any] | RawEvent) -> None:
        """Wait until the timeline's consumer has handled (committed or skipped) each event."""
        wanted = {str(event.id) for event in events}

        async def done() -> set[str]:
            connection = await connect_raw(self.database_url)
            try:
                rows = await connection.fetch(
                    "SELECT event_id::text AS id FROM timeline.inbox "
                    "WHERE consumer = $1 AND event_id::text = ANY($2::text[])",
                    ITEMS_QUEUE,
                    sorted(wanted),
                )
            finally:
                await connection.close()
            return {row["id"] for row in rows}

        await eventually(done, until=lambda found: found == wanted)

    @staticmethod
    async def page(
        client: httpx.AsyncClient,
        user: ActingUser,
        record_type: str,
        record_id: str,
        **params: Any,
    ) -> dict[str, Any]:
        response = await client.get(
            f"/api/timeline/{record_type}/{record_id}", params=params, headers=user.headers
        )
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    async def send(self, *events: Event[Any] | RawEvent) -> None:
        await self.publish(*events)
        await self.processed(*events)

    def _event(self, data: Any, actor: str = "system") -> Event[Any]:
        return new_event(data, org_id=self.org_id, actor_id=actor, time=SystemClock().now())

    def access(
        self,
        record_type: str,
        record_id: str,
        owner: ActingUser,
        *,
        team: str | None = "t1",
        members: dict[str, str] | None = None,
        deleted: bool = False,
    ) -> Event[Any]:
        model = LeadAccessChanged if record_type == "lead" else DealAccessChanged
        data = model(
            id=record_id,
            version=self._next(f"access:{record_id}"),
            org_id=self.org_id,
            owner_id=owner.sub,
            team_id=team,
            members=members or {},
            deleted=deleted,
        )
        return self._event(data)

    def contact(
        self, contact_id: str, emails: Sequence[str], *, deleted: bool = False
    ) -> Event[Any]:
        now = SystemClock().now()
        data = ContactUpdated(
            id=contact_id,
            version=self._next(f"contact:{contact_id}"),
            org_id=self.org_id,
            name="Casey Contact",
            emails=list(emails),
            company_id=None,
            created_at=now,
            updated_at=now,
            deleted_at=now if deleted else None,
            changed=["emails"],
        )
        return self._event(data)

    def company(self, company_id: str, *, deleted: bool = False) -> Event[Any]:
        now = SystemClock().now()
        data = CompanyUpdated(
            id=company_id,
            version=self._next(f"company:{company_id}"),
            org_id=self.org_id,
            name="Acme",
            domain="acme.test",
            created_at=now,
            updated_at=now,
            deleted_at=now if deleted else None,
            changed=["name"],
        )
        return self._event(data)

    def lead(self, lead_id: str, owner: ActingUser, contact_ids: Sequence[str], *,
             status: str = "new", team: str | None = "t1") -> Event[Any]:  # fmt: skip
        now = SystemClock().now()
        data = LeadUpdated(
            id=lead_id,
            version=self._next(f"lead:{lead_id}"),
            org_id=self.org_id,
            title="A lead",
            company_name=None,
            owner_id=owner.sub,
            team_id=team,
            status=status,
            priority="normal",
            source=None,
            estimated_value=None,
            currency=None,
            tags=[],
            next_step=None,
            sla_due_at=None,
            created_at=now,
            updated_at=now,
            deleted_at=None,
            contact_ids=list(contact_ids),
            changed=["contact_ids"],
        )
        return self._event(data)

    def deal(self, deal_id: str, owner: ActingUser, contact_ids: Sequence[str], *,
             stage: str = "proposal", team: str | None = "t1") -> Event[Any]:  # fmt: skip
        now = SystemClock().now()
        data = DealUpdated(
            id=deal_id,
            version=self._next(f"deal:{deal_id}"),
            org_id=self.org_id,
            title="A deal",
            company_id=None,
            contact_ids=list(contact_ids),
            owner_id=owner.sub,
            team_id=team,
            stage=stage,
            amount=None,
            currency=None,
            expected_close_date=None,
            created_at=now,
            updated_at=now,
            deleted_at=None,
            changed=["contact_ids"],
        )
        return self._event(data)

    def item(
        self,
        key: str,
        *,
        version: int = 1,
        kind: str = "meeting",
        service: str = "calendar",
        title: str = "Quarterly review",
        summary: str | None = "Agenda: pricing",
        participants: Sequence[str] = (),
        links: Sequence[tuple[str, str]] = (),
        occurred_at: datetime = BASE_TIME,
        status: str | None = "confirmed",
        private: bool = False,
        sharing: str | None = None,
        owner_id: str | None = None,
        identity: str | None = None,
        event_type: str = "pipedesk.partner.meeting.updated.v1",
        org_id: str | None = None,
        recurrence: dict[str, Any] | None = None,
    ) -> RawEvent:
        """A producer's event carrying a timeline projection (calendar, tasks, gmail…), whose
        contract this process need not know: the timeline reads it generically. The type must be
        one no contract registers (a registered one is validated against its contract). ``key``
        names the source object (one holder's copy, with ``identity``)."""
        assert event_type not in registered_types(), f"{event_type} has a contract; use another"
        event_id = str(uuid4())
        _, producer, entity, action, _ = event_type.split(".")
        envelope = {
            "specversion": "1.0",
            "id": event_id,
            "source": f"/services/{producer}",
            "type": event_type,
            "time": SystemClock().now().isoformat(),
            "datacontenttype": "application/json",
            "orgid": org_id or self.org_id,
            "data": {
                "id": key,
                "timeline": {
                    "kind": kind,
                    "occurred_at": occurred_at.isoformat(),
                    "title": title,
                    "summary": summary,
                    "participants": list(participants),
                    "links": [{"type": kind_, "id": ident} for kind_, ident in links],
                    "source": {
                        "service": service,
                        "key": f"{service}:{key}",
                        "google_id": key,
                        "url": f"https://calendar.google.com/event?eid={key}",
                    },
                    "status": status,
                    "actor_id": owner_id,
                    "visibility": {"private": private, "sharing": sharing, "owner_id": owner_id},
                    "version": version,
                    **({"identity": identity} if identity is not None else {}),
                    **({"recurrence": recurrence} if recurrence is not None else {}),
                },
            },
        }
        return RawEvent(event_id, f"{producer}.{entity}.{action}", json.dumps(envelope).encode())


@pytest.fixture
def feed(service_env: dict[str, str], database_url: str, users: Users) -> Feed:
    return Feed(service_env, database_url, users.org_id)
