"""A rep leaves: an admin deactivates them. Their token is refused by every service, their
calendar watches are stopped in Google, their derived Drive shares removed, their Google grant
revoked, and their leads and deals handed to their team's manager under one audit entry.
Repeating the request does nothing more; a job a service did not answer is finished by the next
request; reactivation restores sign-in, not the records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from automation_service.app import build_app as build_automation
from automation_service.settings import AutomationSettings
from calendar_service.app import build_app as build_calendar
from calendar_service.models import TABLES as CALENDAR_TABLES
from calendar_service.settings import WEBHOOK_PATH as CALENDAR_WEBHOOK
from calendar_service.settings import CalendarSettings
from drive_service.app import build_app as build_drive
from drive_service.models import TABLES as DRIVE_TABLES
from drive_service.settings import WEBHOOK_PATH as DRIVE_WEBHOOK
from drive_service.settings import DriveSettings
from gmail_service.app import build_app as build_gmail
from gmail_service.models import TABLES as GMAIL_TABLES
from gmail_service.settings import GmailSettings
from pipedesk_common.auth import Role
from pipedesk_common.google.scopes import PRODUCT_SCOPES
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.servers import free_port, serve_in_thread
from pipedesk_testkit.service import RunningService, ServiceUnderTest, World, environment
from pipedesk_testkit.waiting import eventually
from tasks_service.app import build_app as build_tasks
from tasks_service.models import TABLES as TASKS_TABLES
from tasks_service.settings import TasksSettings
from timeline_service.app import build_app as build_timeline
from timeline_service.settings import TimelineSettings

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]

FAST_REFUSALS = {"auth_refusals_refresh_seconds": 0.2}
DEACTIVATED = "urn:pipedesk:problem:user-deactivated"
GMAIL_TOPIC = "projects/pipedesk-test/topics/lifecycle"
PUSH_ACCOUNT = "gmail-push@pipedesk-test.iam.gserviceaccount.com"


@dataclass
class Stack:
    world: World
    calendar: RunningService
    tasks: RunningService | None
    drive: RunningService
    gmail: RunningService
    timeline: httpx.AsyncClient
    automation: httpx.AsyncClient
    # Whether the tasks service's outbox relay runs (its events reach the timeline).
    tasks_relayed: bool = True

    @property
    def crm(self) -> httpx.AsyncClient:
        return self.world.crm


def calendar_under_test(world: World) -> ServiceUnderTest:
    return ServiceUnderTest(
        world,
        build_app=build_calendar,
        settings_class=CalendarSettings,
        product="calendar",
        outbox=CALENDAR_TABLES.outbox,
        at_url=lambda url: {"webhook_url": url + CALENDAR_WEBHOOK},
    )


def tasks_under_test(world: World) -> ServiceUnderTest:
    return ServiceUnderTest(
        world,
        build_app=build_tasks,
        settings_class=TasksSettings,
        product="tasks",
        outbox=TASKS_TABLES.outbox,
    )


def gmail_under_test(world: World) -> ServiceUnderTest:
    """Mailboxes watched through the emulator's Pub/Sub topic ``GMAIL_TOPIC``."""
    return ServiceUnderTest(
        world,
        build_app=build_gmail,
        settings_class=GmailSettings,
        product="gmail",
        outbox=GMAIL_TABLES.outbox,
        at_url=lambda url: {
            "webhook_url": url + GmailSettings.webhook_path,
            "pubsub_topic": GMAIL_TOPIC,
            "push_service_account": PUSH_ACCOUNT,
            "push_certs_url": world.google.emulator_url + "/oauth2/v1/certs",
        },
    )


async def watched_mailbox(stack: Stack, user: ActingUser) -> None:
    """The user's mailbox connected, its watch made at Google."""
    world = stack.world
    await world.google.admin(
        "PUT",
        "/pubsub/pipedesk-test/topics/lifecycle",
        json={
            "push_endpoint": stack.gmail.url + GmailSettings.webhook_path,
            "service_account": PUSH_ACCOUNT,
        },
    )
    connected = await stack.gmail.client.post("/api/gmail/mailbox", headers=user.headers)
    assert connected.status_code in (200, 201), connected.text
    await eventually(lambda: watching(world, user.principal.email))


async def watching(world: World, email: str) -> bool:
    return bool((await world.google.admin("GET", f"/gmail/{email}/watch")).json()["watching"])


def drive_under_test(world: World) -> ServiceUnderTest:
    return ServiceUnderTest(
        world,
        build_app=build_drive,
        settings_class=DriveSettings,
        product="drive",
        outbox=DRIVE_TABLES.outbox,
        at_url=lambda url: {"webhook_url": url + DRIVE_WEBHOOK},
    )


@asynccontextmanager
async def running(
    world: World, *, with_tasks: bool = True, tasks_relayed: bool = True
) -> AsyncIterator[Stack]:
    """The Google services and the timeline for the CRM to call (``tasks_relayed=False``: the
    tasks service's events stay in its outbox, unsent)."""
    async with AsyncExitStack() as stack:
        calendar = await stack.enter_async_context(
            calendar_under_test(world).start(**FAST_REFUSALS)
        )
        tasks = (
            await stack.enter_async_context(
                tasks_under_test(world).start(relay_enabled=tasks_relayed, **FAST_REFUSALS)
            )
            if with_tasks
            else None
        )
        drive = await stack.enter_async_context(drive_under_test(world).start(**FAST_REFUSALS))
        gmail = await stack.enter_async_context(gmail_under_test(world).start(**FAST_REFUSALS))
        # The timeline on a socket: the CRM calls its part of the lifecycle at TIMELINE_URL.
        settings = TimelineSettings(
            **{**world.service_env, "crm_url": world.crm_url, **FAST_REFUSALS}
        )
        timeline_url = stack.enter_context(serve_in_thread(build_timeline(settings)))
        stack.enter_context(environment("TIMELINE_URL", timeline_url))
        timeline = await stack.enter_async_context(
            httpx.AsyncClient(base_url=timeline_url, timeout=60)
        )
        # The automation service too: its rules, jobs and notifications are of users and orgs.
        automation_settings = AutomationSettings(
            **{
                **world.service_env,
                "crm_url": world.crm_url,
                # Few connections: the run shares the database server with every service here.
                "database_pool_size": 2,
                "database_max_overflow": 1,
                **FAST_REFUSALS,
            }
        )
        automation_url = stack.enter_context(serve_in_thread(build_automation(automation_settings)))
        stack.enter_context(environment("AUTOMATION_URL", automation_url))
        automation = await stack.enter_async_context(
            httpx.AsyncClient(base_url=automation_url, timeout=60)
        )
        yield Stack(world, calendar, tasks, drive, gmail, timeline, automation, tasks_relayed)


@dataclass
class Org:
    admin: ActingUser
    manager: ActingUser
    rep: ActingUser
    colleague: ActingUser


async def known(world: World, *users: ActingUser) -> None:
    for user in users:
        (await world.crm.get("/api/users", headers=user.headers)).raise_for_status()


async def org_with_drive(stack: Stack, users: Users) -> Org:
    org = Org(
        admin=users.make(Role.ADMIN, teams=["t1"]),
        manager=users.make(Role.MANAGER, teams=["t1"]),
        rep=users.make(Role.REP, teams=["t1"]),
        colleague=users.make(Role.REP, teams=["t1"]),
    )
    await known(stack.world, org.admin, org.manager, org.rep, org.colleague)
    await stack.world.google.connect(org.admin, ["drive"])
    rooted = await stack.drive.client.put("/api/drive/root", json={}, headers=org.admin.headers)
    assert rooted.status_code == 200, rooted.text
    return org


async def create(world: World, user: ActingUser, kind: str, title: str) -> str:
    answer = await world.crm.post(f"/api/{kind}", json={"title": title}, headers=user.headers)
    assert answer.status_code == 201, answer.text
    record_id: str = answer.json()["id"]
    return record_id


async def grants(world: World, folder_google_id: str) -> dict[str, str]:
    found = (await world.google.admin("GET", f"/drive/files/{folder_google_id}/permissions")).json()
    return {
        p.get("emailAddress") or p.get("domain") or p["type"]: p["role"]
        for p in found
        if p["role"] != "owner"
    }


async def folder_of(stack: Stack, user: ActingUser, kind: str, record_id: str) -> str:
    answer = await stack.drive.client.get(
        f"/api/drive/records/{kind}/{record_id}/folder", headers=user.headers
    )
    assert answer.status_code == 200, answer.text
    google_id: str = answer.json()["google_id"]
    return google_id


async def live_channels(world: World, email: str) -> list[dict[str, Any]]:
    """The user's push channels Google still sends to: Calendar's and Drive's."""
    found = [
        *(await world.google.admin("GET", "/calendar/channels")).json()["channels"],
        *(await world.google.admin("GET", "/drive/channels")).json(),
    ]
    return [c for c in found if c["owner"] == email and not c["stopped"] and not c["expired"]]


async def rows(world: World, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_async_engine(world.database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(sql), params)
            return [dict(row._mapping) for row in result.all()]
    finally:
        await engine.dispose()


async def hand_overs(world: World, audit_id: str) -> list[dict[str, Any]]:
    return await rows(
        world,
        "SELECT record_type, record_id, action, changes FROM crm.audit_log "
        "WHERE caused_by = CAST(:audit_id AS uuid) AND action = 'owner_changed'",
        audit_id=audit_id,
    )


async def replica_owners(world: World, schema: str, record_ids: list[str]) -> set[str]:
    """The owners a service's access replica holds for these records."""
    found = await rows(
        world,
        f"SELECT record_id, owner_id FROM {schema}.access_replica WHERE record_id = ANY(:ids)",
        ids=record_ids,
    )
    if len(found) != len(record_ids):
        return set()
    return {row["owner_id"] for row in found}


async def refusals(
    stack: Stack, user: ActingUser, lead_id: str, problem: str = DEACTIVATED
) -> dict[str, int]:
    """What each service answers the user's token, on a route every user may call (a refusal
    names ``problem``)."""
    accounts_url = stack.world.google.accounts_url
    async with httpx.AsyncClient(timeout=10) as http:
        answers = {
            "crm": await stack.crm.get("/api/leads", headers=user.headers),
            "calendar": await stack.calendar.client.get(
                "/api/calendar/calendars", headers=user.headers
            ),
            "drive": await stack.drive.client.get("/api/drive/root", headers=user.headers),
            "gmail": await stack.gmail.client.get("/api/gmail/mailbox", headers=user.headers),
            "timeline": await stack.timeline.get(
                f"/api/timeline/lead/{lead_id}", headers=user.headers
            ),
            "accounts": await http.get(f"{accounts_url}/api/accounts/google", headers=user.headers),
        }
        if stack.tasks is not None:
            answers["tasks"] = await stack.tasks.client.get(
                "/api/tasks/lists", headers=user.headers
            )
    for answer in answers.values():
        if answer.status_code == 403:
            assert answer.json()["type"] == problem, answer.text
    return {name: answer.status_code for name, answer in answers.items()}


ENDING = (
    "calendar.channels.stop",
    "drive.permissions.delete",
    "gmail.users.stop",
    "oauth2.revoke",
)


async def ending_calls(world: World) -> int:
    """How many calls to Google ended something: a channel, a share, a watch, a grant."""
    return sum([len(await world.google.requests(api=api)) for api in ENDING])


def all_refused(codes: dict[str, int]) -> bool:
    return set(codes.values()) == {403}


def none_refused(codes: dict[str, int]) -> bool:
    return 403 not in codes.values()


async def test_deactivating_a_rep_ends_their_access_and_hands_their_records_to_the_manager(
    world: World, users: Users
) -> None:
    async with running(world) as stack:
        org = await org_with_drive(stack, users)
        rep = org.rep
        await world.google.connect(rep, ["calendar", "tasks", "drive", "gmail"])
        await watched_mailbox(stack, rep)
        leads = [await create(world, rep, "leads", f"Lead {n}") for n in range(2)]
        deal = await create(world, rep, "deals", "Deal")
        theirs = await create(world, org.colleague, "leads", "Colleague's")
        joined = await world.crm.put(
            f"/api/leads/{theirs}/members/{rep.sub}",
            json={"role": "collaborator"},
            headers=org.colleague.headers,
        )
        assert joined.status_code == 200, joined.text
        own_folder = await folder_of(stack, rep, "lead", leads[0])
        shared_folder = await folder_of(stack, org.colleague, "lead", theirs)
        rep_email = rep.principal.email
        for folder in (own_folder, shared_folder):
            await eventually(lambda f=folder: grants(world, f), until=lambda g: rep_email in g)
        watched = await stack.calendar.client.post("/api/calendar/watch", headers=rep.headers)
        assert watched.status_code == 200, watched.text
        assert await live_channels(world, rep_email)
        assert none_refused(await refusals(stack, rep, leads[0]))

        # Another org's admin does not find them; a manager may not.
        stranger = users.other_org().make(Role.ADMIN)
        await known(world, stranger)
        path = f"/api/users/{rep.sub}/deactivate"
        assert (await world.crm.post(path, json={}, headers=stranger.headers)).status_code == 404
        refused = await world.crm.post(path, json={}, headers=org.manager.headers)
        assert refused.status_code == 403

        answer = await world.crm.post(path, json={}, headers=org.admin.headers)
        assert answer.status_code == 201, answer.text
        job = answer.json()
        assert job["status"] == "completed", job["parts"]
        assert job["new_owner_id"] == org.manager.sub
        assert job["records_reassigned"] == 3
        parts = job["parts"]
        assert list(parts) == [
            "calendar",
            "tasks",
            "drive",
            "gmail",
            "timeline",
            "automation",
            "accounts",
        ]
        assert all(part["state"] == "done" for part in parts.values()), parts
        assert parts["calendar"]["ended"]["channels"] >= 1
        assert parts["drive"]["ended"]["shares"] == 2
        assert parts["gmail"]["ended"] == {"channels": 0, "watches": 1}
        assert parts["accounts"]["ended"] == {"grants": 1}
        assert parts["automation"]["ended"] == {"rules": 0, "attachments": 0}

        # Google: no channel of theirs lives, no folder is shared with them, no grant is left.
        assert await live_channels(world, rep_email) == []
        assert not await watching(world, rep_email)
        for folder in (own_folder, shared_folder):
            assert rep_email not in await grants(world, folder)
        async with httpx.AsyncClient(timeout=10) as http:
            status = await http.get(
                f"{world.google.accounts_url}/api/accounts/google/users/{rep.sub}",
                headers=org.admin.headers,
            )
        assert status.status_code == 404, status.text

        # Every record has its new owner, each hand-over audited under the one audit entry.
        for kind, record_id in [("leads", leads[0]), ("leads", leads[1]), ("deals", deal)]:
            record = await world.crm.get(f"/api/{kind}/{record_id}", headers=org.admin.headers)
            assert record.json()["owner_id"] == org.manager.sub
        audited = await hand_overs(world, job["audit_id"])
        assert sorted(row["record_id"] for row in audited) == sorted([*leads, deal])
        assert all(row["changes"]["owner_id"] == [rep.sub, org.manager.sub] for row in audited)
        [deactivation] = await rows(
            world, "SELECT action, changes FROM crm.audit_log WHERE id = CAST(:id AS uuid)",
            id=job["audit_id"],
        )  # fmt: skip
        assert deactivation == {"action": "deactivated", "changes": {"active": [True, False]}}
        # The owner change is carried through Drive sharing: the manager now writes the folder;
        # and through the access replicas the calendar's, tasks' and drive's links are checked by.
        await eventually(
            lambda: grants(world, own_folder),
            until=lambda g: g.get(org.manager.principal.email) == "writer",
        )
        for schema in ("calendar", "tasks", "drive"):
            await eventually(
                lambda schema=schema: replica_owners(world, schema, [*leads, deal]),
                until=lambda owners: owners == {org.manager.sub},
            )

        # Their token is refused everywhere (the timeline learns it from its next read).
        await eventually(lambda: refusals(stack, rep, leads[0]), until=all_refused)

        # The job can be read back; repeating the request changes nothing.
        location = answer.headers["location"]
        read = await world.crm.get(location, headers=org.admin.headers)
        assert read.status_code == 200
        assert read.json() == job
        assert (await world.crm.get(location, headers=org.manager.headers)).status_code == 403
        assert (await world.crm.get(location, headers=stranger.headers)).status_code == 404
        ending = await ending_calls(world)
        again = await world.crm.post(path, json={}, headers=org.admin.headers)
        assert again.status_code == 200, again.text
        assert again.json() == job
        assert len(await hand_overs(world, job["audit_id"])) == 3
        assert await ending_calls(world) == ending
        # Each service's part, called again, ends nothing more: for the same job it answers
        # what it ended the first time, for another job nothing.
        contract = f"/internal/lifecycle/users/{rep.sub}/deactivated"
        body = {"org_id": users.org_id, "actor_id": org.admin.sub, "job_id": job["id"]}
        other_job = {**body, "job_id": "another-job"}
        for service in (stack.calendar, stack.drive, stack.gmail):
            part = await service.internal("POST", contract, caller="crm", json=body)
            assert part.status_code == 200, part.text
            assert part.json()["ended"] == job["parts"][service.name]["ended"], part.json()
            part = await service.internal("POST", contract, caller="crm", json=other_job)
            assert set(part.json()["ended"].values()) == {0}, part.json()
        token = world.service_token("crm", "accounts")
        async with httpx.AsyncClient(timeout=10) as http:
            for sent, count in (
                (body, job["parts"]["accounts"]["ended"]["grants"]),
                (other_job, 0),
            ):
                part = await http.post(
                    world.google.accounts_url + contract,
                    json=sent,
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert part.json()["ended"] == {"grants": count}
        assert await ending_calls(world) == ending

        # Reactivation restores sign-in, not the records, nor the Google connection.
        back = await world.crm.post(f"/api/users/{rep.sub}/reactivate", headers=org.admin.headers)
        assert back.status_code == 200, back.text
        assert back.json()["active"] is True
        await eventually(lambda: refusals(stack, rep, leads[0]), until=none_refused)
        seen = (await world.crm.get("/api/leads", headers=rep.headers)).json()["items"]
        assert [lead["id"] for lead in seen] == [theirs]  # still a member, owner of nothing
        async with httpx.AsyncClient(timeout=10) as http:
            status = await http.get(
                f"{world.google.accounts_url}/api/accounts/google", headers=rep.headers
            )
        assert status.json()["status"] == "not_connected"
        twice = await world.crm.post(f"/api/users/{rep.sub}/reactivate", headers=org.admin.headers)
        assert twice.status_code == 409


async def test_a_deactivation_a_service_did_not_answer_is_finished_by_the_next_request(
    world: World, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tasks service does not answer: nothing listens where the CRM reaches it.
    monkeypatch.setenv("TASKS_URL", f"http://127.0.0.1:{free_port()}")
    async with running(world, with_tasks=False) as stack:
        org = await org_with_drive(stack, users)
        rep = org.rep
        await world.google.connect(rep, ["calendar", "tasks"])
        leads = [await create(world, rep, "leads", f"Lead {n}") for n in range(3)]
        watched = await stack.calendar.client.post("/api/calendar/watch", headers=rep.headers)
        assert watched.status_code == 200, watched.text
        path = f"/api/users/{rep.sub}/deactivate"

        first = await world.crm.post(
            path, json={"reassign_to": org.colleague.sub}, headers=org.admin.headers
        )
        assert first.status_code == 201, first.text
        job = first.json()
        assert job["status"] == "running"
        parts = job["parts"]
        assert parts["tasks"]["state"] == "failed"
        assert "cannot be reached" in parts["tasks"]["error"]
        assert parts["calendar"]["state"] == parts["drive"]["state"] == "done"
        # The grant is kept until every product stopped what it holds with it.
        assert parts["accounts"]["state"] == "pending"
        assert job["records_done"] is True
        assert job["records_reassigned"] == 3
        assert await live_channels(world, rep.principal.email) == []

        # Another reassignment target is refused while this one is unfinished, and so is a
        # reactivation.
        other = await world.crm.post(
            path, json={"reassign_to": org.manager.sub}, headers=org.admin.headers
        )
        assert other.status_code == 409, other.text
        early = await world.crm.post(f"/api/users/{rep.sub}/reactivate", headers=org.admin.headers)
        assert early.status_code == 409

        async with tasks_under_test(world).start(**FAST_REFUSALS):
            resumed = await world.crm.post(path, json={}, headers=org.admin.headers)
        assert resumed.status_code == 200, resumed.text
        finished = resumed.json()
        assert finished["id"] == job["id"]
        assert finished["status"] == "completed", finished
        assert finished["parts"]["tasks"]["state"] == "done"
        assert finished["parts"]["accounts"]["ended"] == {"grants": 1}
        # Calendar and drive were not asked again; no record was handed over twice.
        assert finished["parts"]["calendar"] == parts["calendar"]
        assert finished["records_reassigned"] == 3
        audited = await hand_overs(world, job["audit_id"])
        assert sorted(row["record_id"] for row in audited) == sorted(leads)


async def test_deactivation_input_is_checked(world: World, users: Users) -> None:
    admin = users.make(Role.ADMIN, teams=["t1"])
    rep = users.make(Role.REP, teams=["t9"])
    viewer = users.make(Role.VIEWER, teams=["t9"])
    await known(world, admin, rep, viewer)
    path = f"/api/users/{rep.sub}/deactivate"
    # No manager shares a team with the rep: the new owner must be named.
    missing = await world.crm.post(path, json={}, headers=admin.headers)
    assert missing.status_code == 422, missing.text
    assert missing.json()["errors"][0]["field"] == "body.reassign_to"
    to_viewer = await world.crm.post(path, json={"reassign_to": viewer.sub}, headers=admin.headers)
    assert to_viewer.status_code == 422
    assert to_viewer.json()["errors"][0]["field"] == "body.reassign_to"
    unknown = await world.crm.post(path, json={"reassign_to": "nobody"}, headers=admin.headers)
    assert unknown.status_code == 422
    extra = await world.crm.post(path, json={"owner": admin.sub}, headers=admin.headers)
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "body.owner"
    themselves = await world.crm.post(
        f"/api/users/{admin.sub}/deactivate", json={"reassign_to": rep.sub}, headers=admin.headers
    )
    assert themselves.status_code == 403
    nobody = await world.crm.post(
        "/api/users/nobody/deactivate", json={"reassign_to": rep.sub}, headers=admin.headers
    )
    assert nobody.status_code == 404
    assert (
        await world.crm.post(f"/api/users/{rep.sub}/reactivate", headers=admin.headers)
    ).status_code == 409
    assert (
        await world.crm.post(f"/api/users/{rep.sub}/reactivate", headers=rep.headers)
    ).status_code == 403


async def test_only_the_crm_calls_the_lifecycle_and_only_services_read_the_deactivated(
    world: World, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with running(world, with_tasks=False) as stack:
        path = f"/internal/lifecycle/users/{rep.sub}/deactivated"
        body = {"org_id": users.org_id, "actor_id": "admin-1", "job_id": "job-1"}
        as_drive = await stack.calendar.internal("POST", path, caller="drive", json=body)
        assert as_drive.status_code == 403, as_drive.text
        as_user = await stack.calendar.client.post(path, json=body, headers=rep.headers)
        assert as_user.status_code == 401
        missing = await stack.calendar.internal(
            "POST", path, caller="crm", json={"org_id": users.org_id}
        )
        assert missing.status_code == 422
        fields = {error["field"] for error in missing.json()["errors"]}
        assert fields == {"body.actor_id", "body.job_id"}
        # Nothing ran: the user is not refused (they have not connected Google: 409).
        assert (await known_status(stack, rep)) == 409

        listing = "/internal/users/deactivated"
        assert (await world.crm.get(listing, headers=rep.headers)).status_code == 401
        own = world.service_token("crm", "crm")
        mine = await world.crm.get(listing, headers={"Authorization": f"Bearer {own}"})
        assert mine.status_code == 403
        token = world.service_token("timeline", "crm")
        read = await world.crm.get(listing, headers={"Authorization": f"Bearer {token}"})
        assert read.status_code == 200
        assert {"org_id": users.org_id, "id": rep.sub} not in read.json()["items"]


async def known_status(stack: Stack, user: ActingUser) -> int:
    answer = await stack.calendar.client.get("/api/calendar/calendars", headers=user.headers)
    return answer.status_code


async def test_disconnecting_google_stops_channels_and_watches_before_revoking(
    world: World, users: Users
) -> None:
    async with running(world, with_tasks=False) as stack:
        rep = users.make(Role.REP, teams=["t1"])
        await known(world, rep)
        await world.google.connect(rep, ["calendar", "gmail"])
        await watched_mailbox(stack, rep)
        watched = await stack.calendar.client.post("/api/calendar/watch", headers=rep.headers)
        assert watched.status_code == 200, watched.text
        email = rep.principal.email
        assert await live_channels(world, email)

        async with httpx.AsyncClient(base_url=world.google.accounts_url, timeout=60) as accounts:
            answer = await accounts.delete("/api/accounts/google", headers=rep.headers)
            assert answer.status_code == 204, answer.text
            status = (await accounts.get("/api/accounts/google", headers=rep.headers)).json()

        # Stopped at Google with the grant, before it was revoked: nothing is left to lapse.
        assert await live_channels(world, email) == []
        assert not await watching(world, email)
        assert status["status"] == "not_connected"
        suspended = await rows(
            world,
            "SELECT suspended FROM calendar.push_channels WHERE user_id = :user_id",
            user_id=rep.sub,
        )
        assert suspended
        assert all(row["suspended"] for row in suspended)
        # Called again (a disconnect retried after Google refused the revocation): nothing more.
        again = await stack.calendar.internal(
            "POST",
            f"/internal/lifecycle/users/{rep.sub}/google-disconnected",
            caller="accounts",
            json={"org_id": users.org_id, "actor_id": rep.sub, "products": ["calendar"]},
        )
        assert again.status_code == 200, again.text
        assert again.json() == {"service": "calendar", "ended": {"channels": 0}}


async def test_only_the_accounts_service_stops_a_disconnected_user(
    world: World, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with running(world, with_tasks=False) as stack:
        path = f"/internal/lifecycle/users/{rep.sub}/google-disconnected"
        body = {"org_id": users.org_id, "actor_id": rep.sub, "products": ["calendar"]}
        as_crm = await stack.calendar.internal("POST", path, caller="crm", json=body)
        assert as_crm.status_code == 403, as_crm.text
        as_user = await stack.calendar.client.post(path, json=body, headers=rep.headers)
        assert as_user.status_code == 401
        unknown = await stack.calendar.internal(
            "POST", path, caller="accounts", json={**body, "products": ["photos"]}
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"] == "body.products"
        empty = await stack.calendar.internal(
            "POST", path, caller="accounts", json={**body, "products": []}
        )
        assert empty.status_code == 422
        assert empty.json()["errors"][0]["field"] == "body.products"
        other = await stack.calendar.internal(
            "POST", path, caller="accounts", json={**body, "products": ["gmail"]}
        )
        assert other.status_code == 200, other.text
        assert other.json() == {"service": "calendar", "ended": {}}


async def test_a_product_that_cannot_be_reached_does_not_hold_a_disconnect_back(
    world: World, users: Users
) -> None:
    async with running(world, with_tasks=False) as stack:
        rep = users.make(Role.REP, teams=["t1"])
        await known(world, rep)
        await world.google.connect(rep, ["calendar", "gmail"])
        await watched_mailbox(stack, rep)
        watched = await stack.calendar.client.post("/api/calendar/watch", headers=rep.headers)
        assert watched.status_code == 200, watched.text
        email = rep.principal.email

        with environment("CALENDAR_URL", f"http://127.0.0.1:{free_port()}"):
            async with httpx.AsyncClient(
                base_url=world.google.accounts_url, timeout=60
            ) as accounts:
                answer = await accounts.delete("/api/accounts/google", headers=rep.headers)
                assert answer.status_code == 204, answer.text
                status = (await accounts.get("/api/accounts/google", headers=rep.headers)).json()

        # The grant is revoked anyway; Gmail stopped its watch, the calendar channel lapses.
        assert status["status"] == "not_connected"
        assert not await watching(world, email)
        assert await live_channels(world, email)


async def token_status(world: World, user: ActingUser, product: str) -> int:
    """How the accounts service answers ``product``'s service asking for the user's token."""
    token = world.service_token(product, "accounts")
    async with httpx.AsyncClient(base_url=world.google.accounts_url, timeout=60) as accounts:
        answer = await accounts.post(
            "/internal/google/token",
            json={
                "org_id": user.principal.org_id,
                "user_id": user.sub,
                "scopes": list(PRODUCT_SCOPES[product]),
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    return answer.status_code


async def test_disconnecting_one_product_stops_it_alone_and_refuses_its_tokens(
    world: World, users: Users
) -> None:
    async with running(world, with_tasks=False) as stack:
        admin = users.make(Role.ADMIN, teams=["t1"])
        rep = users.make(Role.REP, teams=["t1"])
        colleague = users.make(Role.REP, teams=["t1"])
        stranger = users.other_org().make(Role.ADMIN)
        await known(world, admin, rep, colleague, stranger)
        await world.google.connect(rep, ["calendar", "gmail"])
        await watched_mailbox(stack, rep)
        watched = await stack.calendar.client.post("/api/calendar/watch", headers=rep.headers)
        assert watched.status_code == 200, watched.text
        email = rep.principal.email
        assert await live_channels(world, email)
        assert await known_status(stack, rep) == 200

        async with httpx.AsyncClient(base_url=world.google.accounts_url, timeout=60) as accounts:
            unknown = await accounts.delete(
                "/api/accounts/google/products/photos", headers=rep.headers
            )
            assert unknown.status_code == 422, unknown.text
            assert unknown.json()["errors"][0]["field"] == "path.product"
            not_granted = await accounts.delete(
                "/api/accounts/google/products/tasks", headers=rep.headers
            )
            assert not_granted.status_code == 404
            by_user = f"/api/accounts/google/users/{rep.sub}/products/calendar"
            assert (await accounts.delete(by_user, headers=colleague.headers)).status_code == 403
            assert (await accounts.delete(by_user, headers=stranger.headers)).status_code == 404

            answer = await accounts.delete(
                "/api/accounts/google/products/calendar", headers=rep.headers
            )
            assert answer.status_code == 204, answer.text
            status = (await accounts.get("/api/accounts/google", headers=rep.headers)).json()
            again = await accounts.delete(by_user, headers=admin.headers)
            assert again.status_code == 404

        # Calendar's channels are stopped at Google; Gmail's watch and grant go on.
        assert await live_channels(world, email) == []
        assert await watching(world, email)
        assert status["status"] == "connected"
        assert status["products"]["calendar"]["granted"] is False
        assert status["products"]["gmail"]["granted"] is True
        # No calendar token is issued for the user any more; Gmail's still are.
        assert await token_status(world, rep, "calendar") == 409
        assert await token_status(world, rep, "gmail") == 200

        # The admin disconnects the last product: the whole grant is revoked.
        async with httpx.AsyncClient(base_url=world.google.accounts_url, timeout=60) as accounts:
            last = await accounts.delete(
                f"/api/accounts/google/users/{rep.sub}/products/gmail", headers=admin.headers
            )
            assert last.status_code == 204, last.text
            ended = (await accounts.get("/api/accounts/google", headers=rep.headers)).json()
        assert ended["status"] == "not_connected"
        assert not await watching(world, email)
