"""Leads' SLA: the due time counted in the team's business hours (a holiday and a weekend
skipped), recomputed when the priority changes and read-only for clients while a policy
applies; the work queue ordered by due time and priority, each user seeing only their share;
a breach raised once (one event, one email per recipient, none to who opted out) however many
workers look, an email to the lead's contact before the deadline preventing it, and nothing
raised with the flag off; a meeting with a lead's contact responding when it is arranged or held;
a lead CRM no longer has set aside while the others' due times are written."""

import asyncio
import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from automation_service.app import build_app as build_automation
from automation_service.settings import AutomationSettings
from calendar_service.app import build_app as build_calendar
from calendar_service.models import TABLES as CALENDAR_TABLES
from calendar_service.settings import WEBHOOK_PATH as CALENDAR_WEBHOOK
from calendar_service.settings import CalendarSettings
from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from gmail_service.app import build_app as build_gmail
from gmail_service.models import TABLES as GMAIL_TABLES
from gmail_service.settings import GmailSettings
from pipedesk_common.auth import Role, ServiceTokenIssuer
from pipedesk_common.clock import Clock, ManualClock
from pipedesk_common.events import decode_event
from pipedesk_common.keys import dev_service_key_path
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import ActingUser, Identity, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.proxy import server_of, tcp_proxy
from pipedesk_testkit.servers import serve_in_thread
from pipedesk_testkit.service import ServiceUnderTest, World
from pipedesk_testkit.waiting import eventually
from timeline_service.app import build_app as build_timeline
from timeline_service.settings import TimelineSettings

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]
SCAN = "/internal/jobs/automation.sla-scan"
NEW_YORK_OFFICE = {
    "time_zone": "America/New_York",
    "week": {
        day: {"start": "09:00", "end": "17:00"} for day in ("mon", "tue", "wed", "thu", "fri")
    },
    "holidays": ["2026-03-09"],
}


def service_headers(identity: Identity, clock: Clock) -> dict[str, str]:
    """The automation service's own token (for its jobs route), minted on ``clock``."""
    key = ECKey.import_key(dev_service_key_path(identity.key_dir, "automation").read_bytes())
    token = ServiceTokenIssuer("automation", key, clock=clock).token_for("automation")
    return {"Authorization": f"Bearer {token}"}


async def rows(database_url: str, query: str, **values: Any) -> list[dict[str, Any]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(query), values)
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def clock_of(database_url: str, lead: str) -> dict[str, Any] | None:
    found = await rows(
        database_url, "SELECT * FROM automation.sla_clocks WHERE lead_id = :id", id=lead
    )
    return found[0] if found else None


async def alerts(database_url: str, routing_key: str, lead: str) -> list[dict[str, Any]]:
    found = await rows(
        database_url,
        "SELECT body FROM automation.outbox WHERE routing_key = :key ORDER BY id",
        key=routing_key,
    )
    events = [decode_event(bytes(row["body"])).data.model_dump(mode="json") for row in found]
    return [event for event in events if event["record"]["id"] == lead]


async def locked(database_url: str, lead: str) -> bool:
    """Whether a running transaction holds the lead's clock now. Read from the row's locker
    (its ``xmax``, a transaction still running), never by locking it: a probe that took the lock,
    however briefly, would make the sync skip the clock it holds."""
    found = await rows(
        database_url,
        "SELECT 1 FROM automation.sla_clocks AS clock JOIN pg_stat_activity AS running"
        " ON running.backend_xid = clock.xmax WHERE clock.lead_id = :id",
        id=lead,
    )
    return bool(found)


async def mail_from(world: World, sender: ActingUser, recipient: ActingUser) -> list[str]:
    """The Message-IDs of the mail in ``sender``'s sent mail that reached ``recipient``."""

    async def mailbox(user: ActingUser) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (
            await world.google.admin("GET", f"/gmail/{user.principal.email}/messages")
        ).json()
        return found

    sent = {m["messageId"] for m in await mailbox(sender) if "SENT" in m["labelIds"]}
    return [m["messageId"] for m in await mailbox(recipient) if m["messageId"] in sent]


async def lead_of(crm: httpx.AsyncClient, user: ActingUser, lead: str) -> dict[str, Any]:
    answer = await crm.get(f"/api/leads/{lead}", headers=user.headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def create_lead(crm: httpx.AsyncClient, user: ActingUser, **fields: Any) -> dict[str, Any]:
    answer = await crm.post("/api/leads", json={"title": "Lead", **fields}, headers=user.headers)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def utc(text_value: str | None) -> datetime | None:
    return datetime.fromisoformat(text_value) if text_value else None


@asynccontextmanager
async def crm_on(clock: Clock, service_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A CRM on ``clock``, on a socket (the automation service writes due times to it)."""
    with serve_in_thread(build_crm(CrmSettings(**service_env), clock=clock)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client


async def test_due_times_count_business_hours_follow_priority_and_fill_each_users_queue(
    open_service: OpenService,
    identity: Identity,
    service_env: dict[str, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Friday 6 March 2026, 15:00 in New York; Monday 9 is a holiday of team t1, and the clocks
    # go forward on Sunday 8.
    clock = ManualClock(datetime(2026, 3, 6, 20, 0, tzinfo=UTC))
    users = Users(dataclasses.replace(identity.minter, clock=clock))
    admin = users.make(Role.ADMIN, teams=["t1", "t2"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    rep = users.make(Role.REP, teams=["t1"])
    teammate = users.make(Role.REP, teams=["t1"])
    other_team = users.make(Role.REP, teams=["t2"])
    viewer = users.make(Role.VIEWER, teams=["t1"])
    stranger = users.other_org().make(Role.ADMIN, teams=["t1"])
    async with crm_on(clock, service_env) as crm:
        monkeypatch.setenv("CRM_URL", str(crm.base_url))
        async with open_service(
            build_automation, AutomationSettings, clock=clock, jobs_enabled=False
        ) as automation:
            for user in (admin, manager, rep, teammate, other_team, viewer):
                (await crm.get("/api/users", headers=user.headers)).raise_for_status()

            # Policies are the admins'; calendars the admins' and the team's managers'.
            policy = {"first_response_minutes": 240, "next_touch_minutes": 480}
            refused = await automation.put(
                "/api/automation/sla/policies/normal", json=policy, headers=manager.headers
            )
            assert refused.status_code == 403, refused.text
            bad = await automation.put(
                "/api/automation/sla/policies/normal",
                json={**policy, "first_response_minutes": 0},
                headers=admin.headers,
            )
            assert bad.status_code == 422
            assert bad.json()["errors"][0]["field"] == "body.first_response_minutes"
            for priority, minutes in (("normal", 240), ("high", 60), ("urgent", 60)):
                answer = await automation.put(
                    f"/api/automation/sla/policies/{priority}",
                    json={**policy, "first_response_minutes": minutes},
                    headers=admin.headers,
                )
                assert answer.status_code == 200, answer.text
            listed = await automation.get(
                "/api/automation/sla/policies", params={"limit": 2}, headers=rep.headers
            )
            more = await automation.get(
                "/api/automation/sla/policies",
                params={"limit": 2, "cursor": listed.json()["next_cursor"]},
                headers=rep.headers,
            )
            assert [p["priority"] for p in listed.json()["items"] + more.json()["items"]] == [
                "normal",
                "high",
                "urgent",
            ]
            unknown_zone = await automation.put(
                "/api/automation/sla/calendars/teams/t1",
                json={**NEW_YORK_OFFICE, "time_zone": "Mars/Olympus"},
                headers=manager.headers,
            )
            assert unknown_zone.status_code == 422
            assert unknown_zone.json()["errors"][0]["field"] == "body.time_zone"
            no_such_hour = await automation.put(
                "/api/automation/sla/calendars/teams/t1",
                json={**NEW_YORK_OFFICE, "week": {"mon": {"start": "17:00", "end": "25:00"}}},
                headers=manager.headers,
            )
            assert no_such_hour.status_code == 422
            assert no_such_hour.json()["errors"][0]["field"] == "body.week.mon.end"
            not_theirs = await automation.put(
                "/api/automation/sla/calendars/teams/t2",
                json=NEW_YORK_OFFICE,
                headers=manager.headers,
            )
            assert not_theirs.status_code == 403
            office = await automation.put(
                "/api/automation/sla/calendars/teams/t1",
                json=NEW_YORK_OFFICE,
                headers=manager.headers,
            )
            assert office.status_code == 200, office.text
            assert (
                await automation.get("/api/automation/sla/policies", headers=stranger.headers)
            ).json()["items"] == []
            assert (
                await automation.get("/api/automation/sla/calendars", headers=stranger.headers)
            ).json()["items"] == []

            # Friday 15:00 + 4 business hours: 2 on Friday, none on the weekend or the Monday
            # holiday, 2 on Tuesday: 11:00 EDT.
            lead = await create_lead(crm, rep, team_id="t1", sla_due_at="2030-01-01T00:00:00Z")
            tuesday = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
            shown = await eventually(
                lambda: lead_of(crm, rep, lead["id"]),
                until=lambda got: utc(got["sla_due_at"]) == tuesday,
            )
            assert shown["sla_managed"] is True
            refused_write = await crm.patch(
                f"/api/leads/{lead['id']}",
                json={"sla_due_at": "2030-01-01T00:00:00Z"},
                headers=rep.headers,
            )
            assert refused_write.status_code == 422
            assert refused_write.json()["errors"][0]["field"] == "body.sla_due_at"
            audit = await rows(
                database_url,
                "SELECT actor_id FROM crm.audit_log WHERE record_id = :id AND actor_id = :actor",
                id=lead["id"],
                actor="svc:automation",
            )
            assert audit

            # High priority: one business hour, Friday 16:00 EST.
            raised = await crm.patch(
                f"/api/leads/{lead['id']}", json={"priority": "high"}, headers=rep.headers
            )
            assert raised.status_code == 200, raised.text
            friday = datetime(2026, 3, 6, 21, 0, tzinfo=UTC)
            await eventually(
                lambda: lead_of(crm, rep, lead["id"]),
                until=lambda got: utc(got["sla_due_at"]) == friday,
            )

            # The queue: by due time, then priority (urgent before high at one due time).
            urgent = await create_lead(crm, rep, team_id="t1", priority="urgent")
            normal = await create_lead(crm, teammate, team_id="t1")
            elsewhere = await create_lead(crm, other_team, team_id="t2", priority="urgent")
            without_policy = await create_lead(crm, rep, team_id="t1", priority="low")
            for created in (urgent, normal, elsewhere):
                await eventually(
                    lambda created=created: clock_of(database_url, created["id"]),
                    until=lambda got: got is not None and got["due_at"] is not None,
                )
            await eventually(
                lambda: clock_of(database_url, without_policy["id"]),
                until=lambda got: got is not None,
            )

            async def queue(user: ActingUser, **params: Any) -> httpx.Response:
                return await automation.get(
                    "/api/automation/queue", params=params, headers=user.headers
                )

            def ids(answer: httpx.Response) -> list[str]:
                return [item["lead_id"] for item in answer.json()["items"]]

            assert ids(await queue(rep)) == [urgent["id"], lead["id"]]
            assert ids(await queue(teammate)) == [normal["id"]]
            assert ids(await queue(manager)) == [urgent["id"], lead["id"], normal["id"]]
            everyone = [urgent["id"], lead["id"], elsewhere["id"], normal["id"]]
            first = await queue(admin, limit=2)
            assert ids(first)[:1] == [urgent["id"]]
            second = await queue(admin, limit=2, cursor=first.json()["next_cursor"])
            assert sorted(ids(first) + ids(second)) == sorted(everyone)
            assert second.json()["next_cursor"] is None
            assert (await queue(viewer)).status_code == 403
            assert ids(await queue(stranger)) == []
            tampered = await queue(admin, cursor=first.json()["next_cursor"][:-2] + "xx")
            assert tampered.status_code == 400

            # A call noted on the lead is its first response: the next touch is due 8 business
            # hours later (2 on Friday, the holiday skipped, 6 on Tuesday).
            call = await crm.post(
                f"/api/leads/{normal['id']}/notes",
                json={"body": "Called the buyer", "kind": "call"},
                headers=teammate.headers,
            )
            assert call.status_code == 201, call.text
            next_touch = datetime(2026, 3, 10, 19, 0, tzinfo=UTC)
            await eventually(
                lambda: lead_of(crm, teammate, normal["id"]),
                until=lambda got: utc(got["sla_due_at"]) == next_touch,
            )
            [item] = (await queue(teammate)).json()["items"]
            assert item["waiting_for"] == "next_touch"

            # A policy removed: the field is the users' again (after the sync writes it).
            removed = await automation.delete(
                "/api/automation/sla/policies/high", headers=admin.headers
            )
            assert removed.status_code == 204
            synced = await automation.post(
                "/internal/jobs/automation.sla-sync", headers=service_headers(identity, clock)
            )
            assert synced.status_code == 200, synced.text
            released = await lead_of(crm, rep, lead["id"])
            assert released["sla_managed"] is False
            assert released["sla_due_at"] is None


async def test_a_breach_is_raised_once_an_email_prevents_it_and_the_flag_stops_it(
    google: GoogleStack,
    open_service: OpenService,
    identity: Identity,
    service_env: dict[str, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CRM, gmail and both automation replicas on one controlled clock (their service tokens
    # are checked against it).
    clock = ManualClock(datetime.now(UTC))
    async with crm_on(clock, service_env) as crm:
        monkeypatch.setenv("CRM_URL", str(crm.base_url))
        world = World(google, crm, str(crm.base_url), service_env, identity, database_url)
        timeline_settings = TimelineSettings(**{**service_env, "crm_url": str(crm.base_url)})
        with serve_in_thread(build_timeline(timeline_settings, clock=clock)) as timeline_url:
            async with httpx.AsyncClient(base_url=timeline_url, timeout=30) as timeline:
                await breach_once_email_prevents_flag_stops(
                    world, open_service, identity, clock, timeline
                )


async def breach_once_email_prevents_flag_stops(
    world: World,
    open_service: OpenService,
    identity: Identity,
    clock: ManualClock,
    timeline: httpx.AsyncClient,
) -> None:
    users = Users(identity.minter)
    admin = users.make(Role.ADMIN, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    rep = users.make(Role.REP, teams=["t1"])
    other_manager = users.make(Role.MANAGER, teams=["t2"])
    stranger = users.other_org().make(Role.ADMIN, teams=["t1"])
    buyer = f"buyer@customer-{secrets.token_hex(4)}.example"
    gmail_stack = ServiceUnderTest(
        world,
        build_app=build_gmail,
        settings_class=GmailSettings,
        product="gmail",
        outbox=GMAIL_TABLES.outbox,
    )
    replica = {"clock": clock, "jobs_enabled": False, "database_pool_size": 2}
    async with (
        gmail_stack.start(clock, pubsub_topic=None) as gmail,
        open_service(build_automation, AutomationSettings, **replica) as first,
        open_service(build_automation, AutomationSettings, **replica) as second,
    ):
        for user in (admin, manager, rep, other_manager):
            (await world.crm.get("/api/users", headers=user.headers)).raise_for_status()
        for user in (admin, rep):
            await world.google.connect(user, ["gmail"])
            connected = await gmail.client.post("/api/gmail/mailbox", headers=user.headers)
            assert connected.status_code in (200, 201), connected.text
        configured = await gmail.client.put(
            "/api/gmail/settings", json={"automation_sender_id": admin.sub}, headers=admin.headers
        )
        assert configured.status_code == 200, configured.text
        policy = {
            "first_response_minutes": 20,
            "next_touch_minutes": 1440,
            "warning_minutes": 10,
            "escalate_to_admins": True,
        }
        answer = await first.put(
            "/api/automation/sla/policies/normal", json=policy, headers=admin.headers
        )
        assert answer.status_code == 200, answer.text

        # The flag is the admins'; another org sees none of it.
        flag = {"scope": "org", "enabled": True}
        assert (
            await first.put("/api/automation/flags/sla.worker", json=flag, headers=rep.headers)
        ).status_code == 403
        unknown = await first.put(
            "/api/automation/flags/sla.nope", json=flag, headers=admin.headers
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"] == "path.key"
        on = await first.put("/api/automation/flags/sla.worker", json=flag, headers=admin.headers)
        assert on.status_code == 200, on.text
        # (Global flags are everyone's; another org's own flags are not.)
        seen = (await first.get("/api/automation/flags", headers=stranger.headers)).json()
        assert [flag for flag in seen["items"] if flag["scope"] != "global"] == []

        # The team's manager wants the warnings, not the breaches; each choice is the user's own.
        unchanged = await first.put("/api/automation/preferences", json={}, headers=manager.headers)
        assert unchanged.json() == {
            "owner_changed": True,
            "sla_warning": True,
            "sla_breached": True,
        }
        bad = await first.put(
            "/api/automation/preferences", json={"sla_breached": 0}, headers=manager.headers
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body.sla_breached"
        opted = await first.put(
            "/api/automation/preferences", json={"sla_breached": False}, headers=manager.headers
        )
        assert opted.json() == {"owner_changed": True, "sla_warning": True, "sla_breached": False}
        kept = await second.put(
            "/api/automation/preferences", json={"owner_changed": False}, headers=manager.headers
        )
        assert kept.json() == {"owner_changed": False, "sla_warning": True, "sla_breached": False}
        theirs = await first.get("/api/automation/preferences", headers=rep.headers)
        assert theirs.json() == {"owner_changed": True, "sla_warning": True, "sla_breached": True}

        contact = await world.crm.post(
            "/api/contacts", json={"name": "Buyer", "emails": [buyer]}, headers=rep.headers
        )
        assert contact.status_code == 201, contact.text
        answered = await create_lead(
            world.crm, rep, team_id="t1", contact_ids=[contact.json()["id"]]
        )
        ignored = await create_lead(world.crm, rep, team_id="t1", title="Ignored")
        clock.set(datetime.now(UTC))  # the deadlines count from the leads' creation
        for lead in (answered, ignored):
            await eventually(
                lambda lead=lead: clock_of(world.database_url, lead["id"]),
                until=lambda got: got is not None and got["due_at"] is not None,
            )

        # An email to the lead's contact before the deadline: a first response.
        sent = await gmail.client.post(
            "/api/gmail/messages",
            json={"to": [buyer], "subject": "Hello", "text": "Following up."},
            headers={**rep.headers, "Idempotency-Key": secrets.token_hex(8)},
        )
        assert sent.status_code == 201, sent.text
        await eventually(
            lambda: clock_of(world.database_url, answered["id"]),
            until=lambda got: got is not None and got["responded_at"] is not None,
        )

        async def scan_on_both() -> None:
            headers = service_headers(identity, clock)
            answers = await asyncio.gather(
                first.post(SCAN, headers=headers), second.post(SCAN, headers=headers)
            )
            for scanned in answers:
                assert scanned.status_code == 200, scanned.text

        # Ten minutes before the deadline: a warning; past it: a breach. Each once, whatever
        # number of workers look, however often.
        clock.advance(timedelta(minutes=12))
        await scan_on_both()
        clock.advance(timedelta(minutes=10))
        await scan_on_both()
        await scan_on_both()
        warned = await alerts(world.database_url, "automation.sla.warning", ignored["id"])
        [breach] = await alerts(world.database_url, "automation.sla.breached", ignored["id"])
        assert len(warned) == 1
        assert breach["stage"] == "first_response"
        assert breach["timeline"]["kind"] == "sla"
        # The owner and the team's managers; the breach escalates to the admins too, and is not
        # emailed to the manager who opted out of breaches.
        assert warned[0]["recipient_ids"] == [rep.sub, manager.sub]
        assert breach["recipient_ids"] == [rep.sub, admin.sub]
        assert await alerts(world.database_url, "automation.sla.breached", answered["id"]) == []

        # On the lead's timeline, for whoever reads the lead (the manager who opted out of the
        # breach's email too): the warning and the breach.
        async def sla_items(user: ActingUser) -> list[dict[str, Any]]:
            answer = await timeline.get(
                f"/api/timeline/lead/{ignored['id']}", params={"kinds": "sla"}, headers=user.headers
            )
            return list(answer.json()["items"]) if answer.status_code == 200 else []

        items = await eventually(lambda: sla_items(manager), until=lambda got: len(got) == 2)
        assert {item["title"] for item in items} == {
            "SLA breached: first response overdue",
            "SLA warning: first response due soon",
        }
        assert await sla_items(other_manager) == []

        # One email per recipient for the breach, from the org's sender; none to the manager who
        # opted out, none to another team's manager.
        notifications = await rows(
            world.database_url,
            "SELECT n.recipient_ids FROM automation.notifications n "
            "JOIN automation.sla_notifications s ON s.notification_id = n.id "
            "JOIN automation.sla_alerts a ON a.id = s.alert_id "
            "WHERE a.lead_id = :id AND a.kind = 'breached'",
            id=ignored["id"],
        )
        assert sorted(row["recipient_ids"][0] for row in notifications) == sorted(
            [rep.sub, admin.sub]
        )
        await eventually(
            lambda: mail_from(world, admin, rep), until=lambda got: len(got) == 2
        )  # the warning and the breach

        # Every email of the lead's alerts sent (the warning's two, the breach's two): the
        # manager's warning is the one email the manager got.
        async def statuses() -> list[str]:
            found = await rows(
                world.database_url,
                "SELECT n.status FROM automation.notifications n "
                "JOIN automation.sla_notifications s ON s.notification_id = n.id "
                "JOIN automation.sla_alerts a ON a.id = s.alert_id WHERE a.lead_id = :id",
                id=ignored["id"],
            )
            return [row["status"] for row in found]

        await eventually(statuses, until=lambda got: got == ["sent"] * 4)
        assert len(await mail_from(world, admin, manager)) == 1
        assert await mail_from(world, admin, other_manager) == []

        # The flag off: the next run raises nothing.
        off = await first.put(
            "/api/automation/flags/sla.worker",
            json={**flag, "enabled": False},
            headers=admin.headers,
        )
        assert off.status_code == 200, off.text
        late = await create_lead(world.crm, rep, team_id="t1", title="Late")
        await eventually(
            lambda: clock_of(world.database_url, late["id"]),
            until=lambda got: got is not None and got["due_at"] is not None,
        )
        clock.advance(timedelta(minutes=25))
        await scan_on_both()
        assert await alerts(world.database_url, "automation.sla.breached", late["id"]) == []
        assert await alerts(world.database_url, "automation.sla.warning", late["id"]) == []

        # The flag on again. A call after a lead's deadline, noted before any scan saw the
        # breach, moves the lead on to its next touch; the first response's breach is raised all
        # the same, once.
        on_again = await first.put(
            "/api/automation/flags/sla.worker", json=flag, headers=admin.headers
        )
        assert on_again.status_code == 200, on_again.text
        called_late = await create_lead(world.crm, rep, team_id="t1", title="Called late")
        created = await eventually(
            lambda: clock_of(world.database_url, called_late["id"]),
            until=lambda got: got is not None and got["due_at"] is not None,
        )
        clock.advance(timedelta(minutes=21))
        # (The rep's token of the clock's time: the clock is now over an hour ahead.)
        on_the_clock = Users(dataclasses.replace(identity.minter, clock=clock), users.org_id)
        late_rep = on_the_clock.make(Role.REP, teams=["t1"], sub=rep.sub)
        call = await world.crm.post(
            f"/api/leads/{called_late['id']}/notes",
            json={"body": "Called the buyer, late", "kind": "call"},
            headers=late_rep.headers,
        )
        assert call.status_code == 201, call.text
        moved = await eventually(
            lambda: clock_of(world.database_url, called_late["id"]),
            until=lambda got: got is not None and got["responded_at"] is not None,
        )
        assert moved["due_at"] > created["due_at"]
        assert moved["overdue_due_at"] == created["due_at"]
        await scan_on_both()
        await scan_on_both()
        [late_breach] = await alerts(
            world.database_url, "automation.sla.breached", called_late["id"]
        )
        assert late_breach["stage"] == "first_response"
        assert utc(late_breach["due_at"]) == created["due_at"]
        assert await alerts(world.database_url, "automation.sla.warning", called_late["id"]) == []
        settled = await clock_of(world.database_url, called_late["id"])
        assert settled is not None
        assert settled["overdue_due_at"] is None


async def test_a_meeting_responds_when_it_is_arranged_or_when_it_was_held_if_earlier(
    google: GoogleStack,
    open_service: OpenService,
    identity: Identity,
    service_env: dict[str, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    users = Users(identity.minter)
    admin = users.make(Role.ADMIN, teams=["t1"])
    rep = users.make(Role.REP, teams=["t1"])
    suffix = secrets.token_hex(4)
    buyer, late_buyer = f"buyer@{suffix}.example", f"late.buyer@{suffix}.example"
    async with crm_on(clock, service_env) as crm:
        monkeypatch.setenv("CRM_URL", str(crm.base_url))
        world = World(google, crm, str(crm.base_url), service_env, identity, database_url)
        calendar_stack = ServiceUnderTest(
            world,
            build_app=build_calendar,
            settings_class=CalendarSettings,
            product="calendar",
            outbox=CALENDAR_TABLES.outbox,
            at_url=lambda url: {"webhook_url": url + CALENDAR_WEBHOOK},
        )
        async with (
            calendar_stack.start(clock) as calendar,
            open_service(
                build_automation, AutomationSettings, clock=clock, jobs_enabled=False
            ) as automation,
        ):
            for user in (admin, rep):
                (await crm.get("/api/users", headers=user.headers)).raise_for_status()
            await google.connect(rep, ["calendar"])
            policy = {"first_response_minutes": 20, "next_touch_minutes": 1440}
            answer = await automation.put(
                "/api/automation/sla/policies/normal", json=policy, headers=admin.headers
            )
            assert answer.status_code == 200, answer.text
            leads = {}
            for name, address in (("arranged", buyer), ("late", late_buyer)):
                contact = await crm.post(
                    "/api/contacts", json={"name": name, "emails": [address]}, headers=rep.headers
                )
                assert contact.status_code == 201, contact.text
                leads[name] = await create_lead(
                    crm, rep, team_id="t1", contact_ids=[contact.json()["id"]]
                )
            created = clock.now()
            for lead in leads.values():
                await eventually(
                    lambda lead=lead: clock_of(database_url, lead["id"]),
                    until=lambda got: got is not None and got["due_at"] is not None,
                )

            async def meeting(attendee: str, start: datetime) -> None:
                made = await calendar.client.post(
                    "/api/calendar/events",
                    json={
                        "title": "Kick-off",
                        "start": start.isoformat(),
                        "end": (start + timedelta(minutes=30)).isoformat(),
                        "attendees": [attendee],
                    },
                    headers=rep.headers,
                )
                assert made.status_code == 201, made.text

            # Arranged five minutes in, for the day after tomorrow (past the 20-minute
            # deadline): arranging it is the response, on time.
            clock.advance(timedelta(minutes=5))
            await meeting(buyer, created + timedelta(days=2))
            arranged = await eventually(
                lambda: clock_of(database_url, leads["arranged"]["id"]),
                until=lambda got: got is not None and got["responded_at"] is not None,
            )
            assert arranged["responded_at"] == created + timedelta(minutes=5)
            next_touch = created + timedelta(minutes=5 + 1440)
            await eventually(
                lambda: lead_of(crm, rep, leads["arranged"]["id"]),
                until=lambda got: utc(got["sla_due_at"]) == next_touch,
            )

            # Put in the calendar half an hour in, after it was held ten minutes in: it
            # responded when it was held, before the deadline.
            clock.advance(timedelta(minutes=25))
            await meeting(late_buyer, created + timedelta(minutes=10))
            late = await eventually(
                lambda: clock_of(database_url, leads["late"]["id"]),
                until=lambda got: got is not None and got["responded_at"] is not None,
            )
            assert late["responded_at"] == created + timedelta(minutes=10)
            assert late["due_at"] == created + timedelta(minutes=10 + 1440)


async def test_a_lead_crm_no_longer_has_is_set_aside_and_the_others_are_written(
    open_service: OpenService,
    identity: Identity,
    service_env: dict[str, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    users = Users(identity.minter)
    admin = users.make(Role.ADMIN, teams=["t1"])
    rep = users.make(Role.REP, teams=["t1"])
    async with contextlib.AsyncExitStack() as exits:
        crm = await exits.enter_async_context(crm_on(clock, service_env))
        # Automation reaches CRM through a proxy that can hold CRM's answers back.
        to_crm = exits.enter_context(tcp_proxy(*server_of(str(crm.base_url))))
        monkeypatch.setenv("CRM_URL", f"http://127.0.0.1:{to_crm.port}")
        async with open_service(
            build_automation, AutomationSettings, clock=clock, jobs_enabled=False
        ) as automation:
            for user in (admin, rep):
                (await crm.get("/api/users", headers=user.headers)).raise_for_status()

            async def policy(minutes: int) -> None:
                answer = await automation.put(
                    "/api/automation/sla/policies/normal",
                    json={"first_response_minutes": minutes, "next_touch_minutes": 1440},
                    headers=admin.headers,
                )
                assert answer.status_code == 200, answer.text

            async def sync() -> None:
                synced = await automation.post(
                    "/internal/jobs/automation.sla-sync", headers=service_headers(identity, clock)
                )
                assert synced.status_code == 200, synced.text

            await policy(240)
            first, gone, last = [
                (await create_lead(crm, rep, title=f"Lead {n}"))["id"] for n in range(3)
            ]
            created = clock.now()
            for lead in (first, gone, last):
                await eventually(
                    lambda lead=lead: lead_of(crm, rep, lead),
                    until=lambda got: utc(got["sla_due_at"]) == created + timedelta(minutes=240),
                )
            # The lead is erased from CRM by a path whose event this service never sees: CRM
            # answers 404 for it from now on.
            await rows(database_url, "DELETE FROM crm.leads WHERE id = :id RETURNING id", id=gone)

            # A shorter policy: the sync writes the two leads CRM has, and records why the
            # third was not written. It locks one clock at a time, for its one call: while CRM's
            # answer for the first lead is held back, the other clocks are free.
            await policy(120)
            to_crm.hold_answers()
            syncing = asyncio.create_task(sync())
            try:
                await eventually(lambda: locked(database_url, first), until=bool)
                assert not await locked(database_url, last)
            finally:
                to_crm.restore()
            await syncing
            for lead in (first, last):
                shown = await lead_of(crm, rep, lead)
                assert utc(shown["sla_due_at"]) == created + timedelta(minutes=120)
            refused = await clock_of(database_url, gone)
            assert refused is not None
            assert refused["crm_refusal"] == "CRM has no such lead (deleted, or in the trash)"
            assert refused["crm_refused_at"] == clock.now()

            # It is not tried again while its clock stays as it is; a new due time is tried
            # (and refused) again, and the others written again.
            clock.advance(timedelta(minutes=1))
            await sync()
            assert (await clock_of(database_url, gone))["crm_refused_at"] == refused[
                "crm_refused_at"
            ]
            await policy(60)
            await sync()
            for lead in (first, last):
                shown = await lead_of(crm, rep, lead)
                assert utc(shown["sla_due_at"]) == created + timedelta(minutes=60)
            again = await clock_of(database_url, gone)
            assert again is not None
            assert again["crm_refused_at"] == clock.now()
