"""A user asks for their Google data to be deleted: an admin asks the CRM, every service deletes
what came from that account (mirrored events, tasks and mail, sync state, channels and watches
stopped at Google, the timeline copies only they held, their events not sent yet, the answers
remembered for their idempotent requests) and the accounts service forgets the grant.
Afterwards no table of any service holds their Google ids or their e-mail, while a colleague's
data is untouched; a job a service did not answer, or whose CRM process was killed midway, is
finished by the next request with the same report. An offboarded org leaves no row anywhere,
and its users' tokens are refused everywhere until an operator onboards it again."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from crm_service.app import build_app as build_crm
from crm_service.reonboard import NotOffboarded, reonboard
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_common.clock import SystemClock
from pipedesk_common.db import create_sessionmaker
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.proxy import TcpProxy, server_of, tcp_proxy
from pipedesk_testkit.servers import free_port, run_process, serve_in_thread
from pipedesk_testkit.service import World, environment
from pipedesk_testkit.waiting import eventually
from tests.test_user_lifecycle import (
    FAST_REFUSALS,
    Org,
    Stack,
    all_refused,
    live_channels,
    none_refused,
    org_with_drive,
    refusals,
    rows,
    running,
    tasks_under_test,
    watched_mailbox,
    watching,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]

BUYER = "buyer@customer.example"
# Every schema a service of the system keeps its tables in.
SCHEMAS = ("accounts", "automation", "calendar", "crm", "drive", "gmail", "tasks", "timeline")
TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "ARRAY")
OFFBOARDED = "urn:pipedesk:problem:org-offboarded"


async def scan(world: World, needles: list[str], schemas: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every row of every table of ``schemas`` (read from information_schema) whose text, JSON,
    array or byte columns contain one of ``needles``: its schema, table, column and row (on one
    connection)."""
    engine = create_async_engine(world.database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:

            async def query(sql: str, **params: Any) -> list[dict[str, Any]]:
                result = await connection.execute(text(sql), params)
                return [dict(row._mapping) for row in result.all()]

            columns = await query(
                "SELECT table_schema, table_name, column_name, data_type "
                "FROM information_schema.columns c "
                "WHERE table_schema = ANY(:schemas) AND EXISTS (SELECT 1 FROM "
                "information_schema.tables t WHERE t.table_schema = c.table_schema "
                "AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE') "
                "ORDER BY 1, 2, 3",
                schemas=list(schemas),
            )
            assert {column["table_schema"] for column in columns} == set(schemas)
            patterns = [f"%{needle.lower()}%" for needle in needles]
            found: list[dict[str, Any]] = []
            for column in columns:
                schema, table = column["table_schema"], column["table_name"]
                name = column["column_name"]
                if column["data_type"] in TEXT_TYPES:
                    condition = f'lower("{name}"::text) LIKE ANY(:patterns)'
                elif column["data_type"] == "bytea":
                    condition = f"lower(encode(\"{name}\", 'escape')) LIKE ANY(:patterns)"
                else:
                    continue
                hits = await query(
                    f'SELECT to_jsonb(t) AS row FROM "{schema}"."{table}" t WHERE {condition}',
                    patterns=patterns,
                )
                found += [{"table": f"{schema}.{table}", "column": name, **hit} for hit in hits]
            return found
    finally:
        await engine.dispose()


async def google_ids(world: World, org_id: str, user_id: str) -> set[str]:
    """The ids Google gave what the user's account holds, as the services mirrored them."""
    queries = [
        "SELECT google_id AS id FROM calendar.events WHERE org_id = :org AND user_id = :user",
        "SELECT resource->>'iCalUID' AS id FROM calendar.events"
        " WHERE org_id = :org AND user_id = :user",
        "SELECT google_id AS id FROM calendar.calendars WHERE org_id = :org AND user_id = :user",
        "SELECT google_id AS id FROM tasks.tasklists WHERE org_id = :org AND user_id = :user",
        "SELECT google_id AS id FROM tasks.tasks WHERE org_id = :org AND user_id = :user",
        "SELECT google_id AS id FROM gmail.messages WHERE org_id = :org AND user_id = :user",
        "SELECT thread_id AS id FROM gmail.messages WHERE org_id = :org AND user_id = :user",
        "SELECT identity AS id FROM gmail.messages WHERE org_id = :org AND user_id = :user",
    ]
    found: set[str] = set()
    for query in queries:
        found |= {str(row["id"]) for row in await rows(world, query, org=org_id, user=user_id)}
    return {value for value in found if len(value) >= 8}


async def held(world: World, org_id: str, user_id: str) -> dict[str, int]:
    """How many rows of the user's each service holds (mirror, mailbox, timeline copies)."""
    counts = {}
    for name, (table, owner) in {
        "events": ("calendar.events", "user_id"),
        "tasks": ("tasks.tasks", "user_id"),
        "messages": ("gmail.messages", "user_id"),
        "mailboxes": ("gmail.mailboxes", "user_id"),
        "copies": ("timeline.holders", "owner_id"),
        "grants": ("accounts.google_connections", "user_id"),
    }.items():
        query = f"SELECT count(*) AS n FROM {table} WHERE org_id = :org AND {owner} = :user"
        [row] = await rows(world, query, org=org_id, user=user_id)
        counts[name] = int(row["n"])
    return counts


async def deliver(world: World, to: list[str], subject: str) -> None:
    body = {"sender": BUYER, "to": to, "subject": subject, "text": "Numbers attached."}
    answer = await world.google.admin("POST", "/gmail/deliver", json=body)
    assert answer.status_code in (200, 201), answer.text


async def with_google_data(stack: Stack, user: ActingUser, title: str) -> None:
    """The user's mailbox and calendar watched, an event and a task of theirs mirrored."""
    world = stack.world
    await world.google.connect(user, ["calendar", "tasks", "drive", "gmail"])
    await watched_mailbox(stack, user)
    watched = await stack.calendar.client.post("/api/calendar/watch", headers=user.headers)
    assert watched.status_code == 200, watched.text
    # Created with an Idempotency-Key: each service remembers its answer for a retry.
    keyed = {**user.headers, "Idempotency-Key": f"{user.sub}-{title}"}
    event = await stack.calendar.client.post(
        "/api/calendar/events",
        json={
            "title": f"{title} kick-off",
            "start": "2030-03-04T10:00:00Z",
            "end": "2030-03-04T11:00:00Z",
            "attendees": [BUYER],
        },
        headers=keyed,
    )
    assert event.status_code == 201, event.text
    if stack.tasks is not None:
        task = await stack.tasks.client.post(
            "/api/tasks", json={"title": f"{title} follow-up"}, headers=keyed
        )
        assert task.status_code == 201, task.text


def expected(stack: Stack) -> dict[str, int]:
    """What ``with_google_data`` and the two deliveries leave a user: one event, one task, two
    messages in one mailbox, a timeline copy of each, a grant (no task without Tasks; no copy
    of it while the tasks service's events are not sent)."""
    tasks = 1 if stack.tasks is not None else 0
    return {
        "events": 1,
        "tasks": tasks,
        "messages": 2,
        "mailboxes": 1,
        "copies": 3 + (tasks if stack.tasks_relayed else 0),
        "grants": 1,
    }


GOOGLE_SERVICES = ("calendar", "tasks", "drive", "gmail")


async def remembered(world: World, org_id: str, user_id: str) -> dict[str, int]:
    """How many idempotent answers each Google service remembers for the user's requests."""
    counts = {}
    for schema in GOOGLE_SERVICES:
        [row] = await rows(
            world,
            f"SELECT count(*) AS n FROM {schema}.idempotency_keys "
            "WHERE scope = ANY(:scopes) OR (body->'owner'->>'org_id' = :org "
            "AND body->'owner'->>'user_id' = :user)",
            scopes=[f"{action}:{org_id}:{user_id}" for action in CREATES],
            org=org_id,
            user=user_id,
        )
        counts[schema] = int(row["n"])
    return counts


CREATES = ("calendar.events.create", "tasks.tasks.create")


async def unsent(world: World, schema: str, user_id: str) -> int:
    """How many events of ``schema``'s outbox naming the user are not sent yet."""
    [row] = await rows(
        world,
        f"SELECT count(*) AS n FROM {schema}.outbox WHERE status = 0 "
        "AND position(convert_to(:needle, 'UTF8') IN body) > 0",
        needle=json.dumps(user_id),
    )
    return int(row["n"])


async def org_with_mail(stack: Stack, users: Users) -> Org:
    """The rep and a colleague with Google data each; one message both mailboxes hold."""
    org = await org_with_drive(stack, users)
    world = stack.world
    for user, title in ((org.rep, "Rep"), (org.colleague, "Colleague")):
        await with_google_data(stack, user, title)
    rep_email, colleague_email = org.rep.principal.email, org.colleague.principal.email
    await deliver(world, [rep_email], "Only the rep")
    await deliver(world, [colleague_email], "Only the colleague")
    await deliver(world, [rep_email, colleague_email], "Both")
    for user in (org.rep, org.colleague):
        await eventually(
            lambda user=user: held(world, users.org_id, user.sub),
            until=lambda counts: counts == expected(stack),
        )
    return org


def naming_only_others(hits: list[dict[str, Any]], others: set[str]) -> list[dict[str, Any]]:
    """The hits that are not another user's own copy (a message in their mailbox that names the
    deleted user as a recipient, the timeline's copy of it, the event that sent it there):
    those stay theirs."""
    kept = []
    for hit in hits:
        row = hit["row"]
        owner = row.get("user_id") or row.get("owner_id")
        if hit["table"] in ("gmail.messages", "timeline.holders") and owner in others:
            continue
        if hit["table"] == "gmail.outbox":
            body = bytes.fromhex(row["body"].removeprefix("\\x")).decode()
            owner = json.loads(body)["data"]["timeline"]["visibility"]["owner_id"]
            if owner in others:
                continue
        kept.append(hit)
    return kept


async def test_deleting_a_users_google_data_leaves_nothing_of_it_in_any_table(
    world: World, users: Users
) -> None:
    # The tasks service's relay is held back: its events naming the users are still to be sent
    # when the deletion runs, and must not carry the rep's task anywhere afterwards.
    async with running(world, tasks_relayed=False) as stack:
        org = await org_with_mail(stack, users)
        rep, colleague, admin = org.rep, org.colleague, org.admin
        assert await unsent(world, "tasks", rep.sub) >= 1
        colleague_unsent = await unsent(world, "tasks", colleague.sub)
        assert colleague_unsent >= 1
        theirs_remembered = await remembered(world, users.org_id, rep.sub)
        assert theirs_remembered["calendar"] >= 1, theirs_remembered
        assert theirs_remembered["tasks"] >= 1, theirs_remembered
        colleague_remembered = await remembered(world, users.org_id, colleague.sub)
        rep_email = rep.principal.email
        ids = await google_ids(world, users.org_id, rep.sub)
        theirs = await google_ids(world, users.org_id, colleague.sub)
        ids -= theirs  # an id both mailboxes' copies share is not the rep's alone
        ids -= {rep_email}  # their calendar's id: looked for with their e-mail below
        assert len(ids) >= 5, ids
        assert await live_channels(world, rep_email)
        assert await watching(world, rep_email)
        before = await held(world, users.org_id, colleague.sub)
        colleague_items = await rows(
            world,
            "SELECT item_id, source_key, version FROM timeline.holders "
            "WHERE owner_id = :user ORDER BY source_key",
            user=colleague.sub,
        )
        shared = await rows(
            world,
            "SELECT item_id FROM timeline.holders WHERE owner_id = :rep "
            "INTERSECT SELECT item_id FROM timeline.holders WHERE owner_id = :colleague",
            rep=rep.sub,
            colleague=colleague.sub,
        )
        assert len(shared) == 1  # the message both mailboxes hold is one item

        # Another org's admin does not find them; a manager or the rep may not ask.
        path = f"/api/users/{rep.sub}/delete-google-data"
        stranger = users.other_org().make(Role.ADMIN)
        (await world.crm.get("/api/users", headers=stranger.headers)).raise_for_status()
        assert (await world.crm.post(path, headers=stranger.headers)).status_code == 404
        assert (await world.crm.post(path, headers=org.manager.headers)).status_code == 403
        assert (await world.crm.post(path, headers=rep.headers)).status_code == 403
        assert await held(world, users.org_id, rep.sub) == expected(stack)

        answer = await world.crm.post(path, headers=admin.headers)
        assert answer.status_code == 201, answer.text
        job = answer.json()
        assert job["status"] == "completed", job["parts"]
        assert job["scope"] == "user"
        assert job["user_id"] == rep.sub
        report = job["report"]
        assert list(report) == [
            "calendar",
            "tasks",
            "drive",
            "gmail",
            "timeline",
            "automation",
            "accounts",
        ]
        assert report["calendar"]["channels"] >= 1
        assert report["calendar"]["events"] == 1
        assert report["calendar"]["idempotent_answers"] == theirs_remembered["calendar"]
        assert report["tasks"]["tasks"] == 1
        assert report["tasks"]["idempotent_answers"] == theirs_remembered["tasks"]
        assert report["tasks"]["outbox_events"] >= 1
        assert report["drive"]["google_accounts"] == 1
        assert report["gmail"]["watches"] == 1
        assert report["gmail"]["messages"] == 2
        assert report["gmail"]["mailboxes"] == 1
        # The event and the message only they held leave; the one both held stays (their
        # task's event was never sent: the timeline never held it).
        assert report["timeline"] == {"copies": 3, "items": 2}
        assert report["accounts"]["grants"] == 1
        assert {name: part["deleted"] for name, part in job["parts"].items()} == report

        # No table of any service holds their Google ids; none but the CRM's directory and
        # audit of who they are, and the colleague's own copy of the message sent to both,
        # holds their e-mail.
        found = await scan(world, sorted(ids), SCHEMAS)
        assert not found, [(hit["table"], hit["column"]) for hit in found]
        google_schemas = tuple(schema for schema in SCHEMAS if schema != "crm")
        hits = await scan(world, [rep_email], google_schemas)
        assert naming_only_others(hits, {colleague.sub}) == []
        assert await held(world, users.org_id, rep.sub) == dict.fromkeys(expected(stack), 0)
        # No event of theirs is left to be sent, no answer remembered for their requests; the
        # colleague's stay.
        assert await unsent(world, "tasks", rep.sub) == 0
        assert await unsent(world, "tasks", colleague.sub) == colleague_unsent
        assert await remembered(world, users.org_id, rep.sub) == dict.fromkeys(GOOGLE_SERVICES, 0)
        assert await remembered(world, users.org_id, colleague.sub) == colleague_remembered
        # At Google: no channel, no watch, no grant of theirs is left.
        assert await live_channels(world, rep_email) == []
        assert not await watching(world, rep_email)
        async with httpx.AsyncClient(timeout=10) as http:
            status = await http.get(
                f"{world.google.accounts_url}/api/accounts/google/users/{rep.sub}",
                headers=admin.headers,
            )
        assert status.status_code == 404, status.text

        # The colleague's data is untouched; the message both held stays, with their copy only.
        assert await held(world, users.org_id, colleague.sub) == before
        assert (
            await rows(
                world,
                "SELECT item_id, source_key, version FROM timeline.holders "
                "WHERE owner_id = :user ORDER BY source_key",
                user=colleague.sub,
            )
            == colleague_items
        )
        assert await rows(
            world,
            "SELECT id FROM timeline.items WHERE id = :id",
            id=shared[0]["item_id"],
        )
        assert await live_channels(world, colleague.principal.email)
        assert await watching(world, colleague.principal.email)
        # The rep is still a user of the org.
        assert (await world.crm.get("/api/leads", headers=rep.headers)).status_code == 200

        # The audit log records the request and the counts, not the content.
        audited = await rows(
            world,
            "SELECT id::text AS id, action, changes, caused_by::text AS caused_by, actor_id "
            "FROM crm.audit_log WHERE record_type = 'user' AND record_id = :rep "
            "AND action LIKE 'google_data%' ORDER BY occurred_at",
            rep=rep.sub,
        )
        assert [row["action"] for row in audited] == [
            "google_data_delete_requested",
            "google_data_deleted",
        ]
        assert audited[0]["id"] == job["audit_id"]
        assert audited[0]["changes"] == {"job_id": job["id"]}
        assert audited[1]["caused_by"] == job["audit_id"]
        assert audited[1]["changes"] == {"job_id": job["id"], "deleted": report}
        assert {row["actor_id"] for row in audited} == {admin.sub}

        # The job reads back; only an admin of the org reads it.
        location = answer.headers["location"]
        read = await world.crm.get(location, headers=admin.headers)
        assert read.status_code == 200
        assert read.json() == job
        assert (await world.crm.get(location, headers=org.manager.headers)).status_code == 403
        assert (await world.crm.get(location, headers=stranger.headers)).status_code == 404

        # Asked again, it finds nothing more to delete.
        again = await world.crm.post(path, headers=admin.headers)
        assert again.status_code == 201, again.text
        assert again.json()["status"] == "completed"
        for part in again.json()["report"].values():
            assert set(part.values()) <= {0}, again.json()["report"]


async def test_a_deletion_a_service_did_not_answer_finishes_with_the_same_report(
    world: World, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tasks service does not answer at first: nothing listens where the CRM reaches it.
    monkeypatch.setenv("TASKS_URL", f"http://127.0.0.1:{free_port()}")
    async with running(world, with_tasks=False) as stack:
        org = await org_with_mail(stack, users)
        rep = org.rep
        path = f"/api/users/{rep.sub}/delete-google-data"

        first = await world.crm.post(path, headers=org.admin.headers)
        assert first.status_code == 201, first.text
        job = first.json()
        assert job["status"] == "running"
        parts = job["parts"]
        assert parts["tasks"]["state"] == "failed"
        assert "cannot be reached" in parts["tasks"]["error"]
        assert parts["calendar"]["state"] == parts["gmail"]["state"] == "done"
        assert parts["timeline"]["state"] == "done"
        # The grant is kept until every product stopped what it holds with it.
        assert parts["accounts"]["state"] == "pending"
        assert await held(world, users.org_id, rep.sub) == {
            **dict.fromkeys(expected(stack), 0),
            "grants": 1,
        }

        async with tasks_under_test(world).start(**FAST_REFUSALS):
            resumed = await world.crm.post(path, headers=org.admin.headers)
        assert resumed.status_code == 200, resumed.text
        finished = resumed.json()
        assert finished["id"] == job["id"]
        assert finished["status"] == "completed", finished["parts"]
        # The parts done were not run again: their counts are the first run's.
        for name in ("calendar", "drive", "gmail", "timeline"):
            assert finished["report"][name] == job["report"][name]
        assert finished["report"]["gmail"]["messages"] == 2
        assert finished["report"]["timeline"] == {"copies": 3, "items": 2}
        assert finished["report"]["accounts"]["grants"] == 1
        assert await held(world, users.org_id, rep.sub) == dict.fromkeys(expected(stack), 0)
        [done] = await rows(
            world,
            "SELECT changes FROM crm.audit_log WHERE caused_by = CAST(:id AS uuid)",
            id=job["audit_id"],
        )
        assert done["changes"]["deleted"] == finished["report"]


async def test_a_part_answered_but_not_recorded_answers_its_first_counts_when_resumed(
    world: World, users: Users
) -> None:
    async with running(world) as stack:
        org = await org_with_mail(stack, users)
        rep = org.rep
        path = f"/api/users/{rep.sub}/delete-google-data"
        # The CRM does not reach the gmail service: its part is left to do. (``environment``,
        # nested in the stack's own, so what the stack set is undone in order.)
        with environment("GMAIL_URL", f"http://127.0.0.1:{free_port()}"):
            first = await world.crm.post(path, headers=org.admin.headers)
        assert first.status_code == 201, first.text
        job = first.json()
        assert job["parts"]["gmail"]["state"] == "failed"

        # The CRM calls the part, which deletes the mail and answers, and dies before it records
        # the answer: the part is answered, the job does not know it.
        part = await stack.gmail.internal(
            "POST",
            f"/internal/lifecycle/users/{rep.sub}/google-data-deleted",
            caller="crm",
            json={"org_id": users.org_id, "actor_id": org.admin.sub, "job_id": job["id"]},
        )
        assert part.status_code == 200, part.text
        answered = part.json()["ended"]
        assert answered["messages"] == 2
        assert (await held(world, users.org_id, rep.sub))["messages"] == 0
        # The same job id about someone else is refused, naming the field.
        other = await stack.gmail.internal(
            "POST",
            f"/internal/lifecycle/users/{org.colleague.sub}/google-data-deleted",
            caller="crm",
            json={"org_id": users.org_id, "actor_id": org.admin.sub, "job_id": job["id"]},
        )
        assert other.status_code == 422, other.text
        assert other.json()["errors"][0]["field"] == "body.job_id"

        # Resumed, the job calls the part again and reports what it did the first time: the
        # report an uninterrupted run makes.
        resumed = await world.crm.post(path, headers=org.admin.headers)
        assert resumed.status_code == 200, resumed.text
        finished = resumed.json()
        assert finished["id"] == job["id"]
        assert finished["status"] == "completed", finished["parts"]
        assert finished["report"]["gmail"] == answered
        assert finished["report"]["accounts"]["grants"] == 1
        for name in ("calendar", "drive", "timeline"):
            assert finished["report"][name] == job["report"][name]
        assert await held(world, users.org_id, rep.sub) == dict.fromkeys(expected(stack), 0)
        # The remembered answer names neither the user nor the org.
        [kept] = await rows(
            world,
            "SELECT to_jsonb(a)::text AS row FROM gmail.lifecycle_answers a WHERE job_id = :id",
            id=job["id"],
        )
        assert rep.sub not in kept["row"]
        assert users.org_id not in kept["row"]


async def test_only_the_crm_calls_the_deletion_part(world: World, users: Users) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with running(world, with_tasks=False) as stack:
        path = f"/internal/lifecycle/users/{rep.sub}/google-data-deleted"
        body = {"org_id": users.org_id, "actor_id": "admin-1", "job_id": "job-1"}
        for service in (stack.calendar, stack.gmail, stack.drive):
            as_drive = await service.internal("POST", path, caller="drive", json=body)
            assert as_drive.status_code == 403, as_drive.text
            as_user = await service.client.post(path, json=body, headers=rep.headers)
            assert as_user.status_code == 401
        as_user = await stack.timeline.post(path, json=body, headers=rep.headers)
        assert as_user.status_code == 401
        missing = await stack.calendar.internal(
            "POST", path, caller="crm", json={"org_id": users.org_id}
        )
        assert missing.status_code == 422
        fields = {error["field"] for error in missing.json()["errors"]}
        assert fields == {"body.actor_id", "body.job_id"}
        nobody = await world.crm.post(
            "/api/users/nobody/delete-google-data",
            headers=users.make(Role.ADMIN).headers,
        )
        assert nobody.status_code == 404


async def org_rows(world: World, org_id: str) -> list[dict[str, Any]]:
    """Every row naming the org in any table of any service, but the offboarding's job."""
    hits = await scan(world, [org_id], SCHEMAS)
    return [hit for hit in hits if hit["table"] != "crm.data_deletions"]


async def test_offboarding_an_org_leaves_nothing_of_it_and_another_org_untouched(
    world: World, users: Users
) -> None:
    async with running(world) as stack:
        org = await org_with_mail(stack, users)
        lead = await world.crm.post(
            "/api/leads",
            json={"title": "Acme"},
            headers={**org.rep.headers, "Idempotency-Key": "acme-lead"},
        )
        assert lead.status_code == 201, lead.text
        # The org's automation: a rule, a user's notification choice, the org's settings.
        for client_call in (
            stack.automation.post(
                "/api/automation/rules",
                json={"name": "Quotes", "record_type": "lead", "file_types": ["pdf"]},
                headers=org.admin.headers,
            ),
            stack.automation.put(
                "/api/automation/preferences",
                json={"owner_changed": False},
                headers=org.rep.headers,
            ),
            stack.automation.put(
                "/api/automation/settings",
                json={"notify_previous_owner": True},
                headers=org.admin.headers,
            ),
        ):
            made = await client_call
            assert made.status_code in (200, 201), made.text
        # The CRM remembers its answer (the lead) for a retry, naming whose request it was.
        [answer_kept] = await rows(
            world,
            "SELECT body->'owner' AS owner FROM crm.idempotency_keys WHERE key = 'acme-lead'",
        )
        assert answer_kept["owner"] == {"org_id": users.org_id, "user_id": org.rep.sub}
        other_users = users.other_org()
        other = other_users.make(Role.ADMIN, teams=["t1"])
        other_rep = other_users.make(Role.REP, teams=["t1"])
        for user in (other, other_rep):
            (await world.crm.get("/api/users", headers=user.headers)).raise_for_status()
        await with_google_data(stack, other_rep, "Other")
        await deliver(world, [other_rep.principal.email], "Other org")
        theirs = await world.crm.post(
            "/api/leads", json={"title": "Other"}, headers=other_rep.headers
        )
        assert theirs.status_code == 201, theirs.text
        # Everything of both orgs has reached every service (replicas, timeline copies).
        for record_id in (lead.json()["id"], theirs.json()["id"]):
            for schema in ("calendar", "tasks", "drive", "gmail", "timeline"):
                await eventually(
                    lambda schema=schema, record_id=record_id: rows(
                        world,
                        f"SELECT 1 FROM {schema}.access_replica WHERE record_id = :id",
                        id=record_id,
                    )
                )
        other_expected = {**expected(stack), "messages": 1, "copies": 2 + 1}
        await eventually(
            lambda: held(world, other_users.org_id, other_rep.sub),
            until=lambda counts: counts == other_expected,
        )
        other_before = await scan(world, [other_users.org_id], SCHEMAS)
        assert await org_rows(world, users.org_id)
        emails = [user.principal.email for user in (org.rep, org.colleague, org.admin)]
        assert any([await live_channels(world, email) for email in emails])

        # Only an admin of the org, typing its id again, offboards it.
        path = "/api/org/offboard"
        confirm = {"confirm_org_id": users.org_id}
        refused = await world.crm.post(path, json=confirm, headers=org.manager.headers)
        assert refused.status_code == 403
        wrong = await world.crm.post(
            path, json={"confirm_org_id": other_users.org_id}, headers=org.admin.headers
        )
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["errors"][0]["field"] == "body.confirm_org_id"
        missing = await world.crm.post(path, json={}, headers=org.admin.headers)
        assert missing.status_code == 422
        assert await held(world, users.org_id, org.rep.sub) == expected(stack)

        answer = await world.crm.post(path, json=confirm, headers=org.admin.headers)
        assert answer.status_code == 201, answer.text
        job = answer.json()
        assert job["status"] == "completed", [
            (name, part["state"], part["error"]) for name, part in job["parts"].items()
        ]
        assert job["scope"] == "org"
        assert job["user_id"] is None
        report = job["report"]
        assert list(report) == [
            "calendar",
            "tasks",
            "drive",
            "gmail",
            "timeline",
            "automation",
            "accounts",
            "crm",
        ]
        assert report["calendar"]["channels"] >= 2
        assert report["calendar"]["events"] == 2
        assert report["gmail"]["watches"] == 2
        assert report["gmail"]["messages"] == 4
        assert report["accounts"]["grants"] == 3  # the admin's Drive, the rep's, the colleague's
        assert report["crm"]["leads"] == 1
        assert report["crm"]["users"] == 4
        assert report["automation"]["rules"] == 1
        assert report["automation"]["notification_preferences"] == 1
        assert report["automation"]["org_settings"] == 1

        # No row of the org is left anywhere but the job; nothing of it runs at Google.
        left = await org_rows(world, users.org_id)
        assert not left, sorted({(hit["table"], hit["column"]) for hit in left})
        # Nor of what its users created: the lead, remembered for a retry, is gone too. Only
        # the consumers' version gates keep its id (and version), which keep a late
        # redelivery of an old event of it from being applied.
        named = await scan(world, [lead.json()["id"]], SCHEMAS)
        assert {hit["table"].split(".")[1] for hit in named} <= {"entity_versions"}, named
        for email in emails:
            assert await live_channels(world, email) == []
            assert not await watching(world, email)
        [kept] = await rows(
            world, "SELECT scope, status FROM crm.data_deletions WHERE id = :id", id=job["id"]
        )
        assert kept == {"scope": "org", "status": "completed"}

        # The other org is untouched.
        assert await scan(world, [other_users.org_id], SCHEMAS) == other_before
        assert await held(world, other_users.org_id, other_rep.sub) == other_expected
        assert await live_channels(world, other_rep.principal.email)
        assert await watching(world, other_rep.principal.email)

        # A token of the org still valid, of a user it had or of one never seen, is refused by
        # every service; nothing of the org is written again, the offboarding not run again.
        gone_lead = lead.json()["id"]
        newcomer = users.make(Role.ADMIN)
        for user in (org.rep, newcomer):
            await eventually(
                lambda user=user: refusals(stack, user, gone_lead, OFFBOARDED),
                until=all_refused,
            )
        again = await world.crm.post(path, json=confirm, headers=org.admin.headers)
        assert again.status_code == 403, again.text
        assert again.json()["type"] == OFFBOARDED
        assert not await org_rows(world, users.org_id)
        assert (
            len(
                await rows(
                    world, "SELECT id FROM crm.data_deletions WHERE org_id = :org", org=users.org_id
                )
            )
            == 1
        )
        assert none_refused(await refusals(stack, other_rep, theirs.json()["id"], OFFBOARDED))

        # An operator onboards the org again, deliberately: its users start an empty org.
        engine = create_async_engine(world.database_url)
        try:
            sessionmaker = create_sessionmaker(engine)
            await reonboard(sessionmaker, SystemClock(), users.org_id)
            with pytest.raises(NotOffboarded):
                await reonboard(sessionmaker, SystemClock(), users.org_id)
        finally:
            await engine.dispose()
        # Every process stops refusing it at its next read of the CRM's list (the accounts
        # process of this test's world has no CRM to read it from: it keeps its last list).
        await eventually(
            lambda: refusals(stack, org.rep, gone_lead, OFFBOARDED),
            until=lambda codes: none_refused({k: v for k, v in codes.items() if k != "accounts"}),
        )
        directory = await rows(
            world, "SELECT id FROM crm.users WHERE org_id = :org", org=users.org_id
        )
        assert directory == [{"id": org.rep.sub}]
        assert (await world.crm.get("/api/leads", headers=org.rep.headers)).json()["items"] == []


async def deletion_job(world: World, org_id: str, user_id: str) -> dict[str, Any] | None:
    """The user's deletion job as the CRM's table holds it (``None`` before it is written)."""
    found = await rows(
        world,
        "SELECT id::text AS id, status, parts FROM crm.data_deletions "
        "WHERE org_id = :org AND user_id = :user AND scope = 'user'",
        org=org_id,
        user=user_id,
    )
    assert len(found) <= 1, found
    return found[0] if found else None


def comparable(report: dict[str, dict[str, int]]) -> list[tuple[str, dict[str, int | bool]]]:
    """A report, its parts in order, with every count but the outbox events': how many events a
    service wrote naming the user depends on how many syncs their mailbox's and calendar's
    pushes happened to start (one for two deliveries, or two), not on the deletion; of those,
    only that there were some."""
    return [
        (
            name,
            {
                kind: (count > 0 if kind == "outbox_events" else count)
                for kind, count in part.items()
            },
        )
        for name, part in report.items()
    ]


async def proxied(proxy: TcpProxy) -> int:
    """How many connections ``proxy`` has forwarded."""
    return proxy.connections_made


async def lease_lapsed(world: World, job_id: str) -> bool:
    """Whether no live runner holds the deletion job."""
    [row] = await rows(
        world,
        "SELECT lease_holder IS NULL OR lease_expires_at <= now() AS lapsed "
        "FROM crm.data_deletions WHERE id = CAST(:id AS uuid)",
        id=job_id,
    )
    return bool(row["lapsed"])


def done_before(parts: dict[str, Any], service: str) -> bool:
    """Whether every part before ``service``'s is done and ``service``'s is not run yet."""
    order = parts[service]["order"]
    return parts[service]["state"] == "pending" and all(
        part["state"] == "done" for part in parts.values() if part["order"] < order
    )


@pytest.mark.slow
async def test_a_deletion_whose_crm_process_is_killed_midway_finishes_with_the_same_report(
    world: World, users: Users
) -> None:
    """One org's deletion runs uninterrupted; the same deletion in another org runs in a CRM
    process that is killed while the timeline's part is on its way, then restarted: the
    admin's repeated request finishes the job, the parts done before the kill are not run
    again, and the report equals the uninterrupted one."""
    others = users.other_org()
    async with running(world, tasks_relayed=False) as stack:
        reference = await org_with_mail(stack, users)
        org = await org_with_mail(stack, others)
        rep = org.rep
        theirs = await google_ids(world, others.org_id, rep.sub)
        theirs -= await google_ids(world, others.org_id, org.colleague.sub)
        theirs -= {rep.principal.email}
        assert len(theirs) >= 5, theirs
        colleague_before = await held(world, others.org_id, org.colleague.sub)

        uninterrupted = await world.crm.post(
            f"/api/users/{reference.rep.sub}/delete-google-data", headers=reference.admin.headers
        )
        assert uninterrupted.status_code == 201, uninterrupted.text
        assert uninterrupted.json()["status"] == "completed", uninterrupted.json()["parts"]
        expected_report = uninterrupted.json()["report"]

        # The CRM as a deployment runs it, reaching the timeline through a proxy that can keep
        # the CRM's call from arriving; it waits for the timeline as long as the test needs.
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        timeline_url = str(stack.timeline.base_url).rstrip("/")
        path = f"/api/users/{rep.sub}/delete-google-data"
        env = {
            **world.service_env,
            "CRM_PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "CRM_LIFECYCLE_CALL_TIMEOUT_SECONDS": "600",
            # The killed process's hold on the job lapses soon after it dies.
            "CRM_LIFECYCLE_LEASE_SECONDS": "2",
            # The admin's repeated request resumes the job, not the restarted CRM's resumer.
            "CRM_JOBS_ENABLED": "false",
            # Few connections: the run shares the database server with every service here.
            "DATABASE_POOL_SIZE": "2",
            "DATABASE_MAX_OVERFLOW": "1",
        }
        with tcp_proxy(*server_of(timeline_url)) as to_timeline:
            to_timeline.stall()
            killed_env = {**env, "TIMELINE_URL": f"http://127.0.0.1:{to_timeline.port}"}
            with run_process(
                ["-m", "crm_service"], env=killed_env, ready_url=f"{base_url}/readyz"
            ) as first:
                async with httpx.AsyncClient(base_url=base_url, timeout=600) as crm:
                    request = asyncio.create_task(crm.post(path, headers=org.admin.headers))
                    # Calendar, tasks, drive and gmail have done their part; the timeline's
                    # call has left the CRM and is held on its way.
                    midway = await eventually(
                        lambda: deletion_job(world, others.org_id, rep.sub),
                        until=lambda job: job is not None and done_before(job["parts"], "timeline"),
                        within=120,
                    )
                    await eventually(lambda: proxied(to_timeline))
                    first.send_signal(signal.SIGKILL)
                    assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
                    with pytest.raises(httpx.HTTPError):
                        await request
            # The held call never reaches the timeline.
            to_timeline.cut()
        assert midway is not None
        killed = await deletion_job(world, others.org_id, rep.sub)
        assert killed is not None
        assert killed["status"] == "running"
        assert killed["parts"] == midway["parts"]
        done = {name for name, part in killed["parts"].items() if part["state"] == "done"}
        assert done == {"calendar", "tasks", "drive", "gmail"}
        left = await held(world, others.org_id, rep.sub)
        assert left["copies"] == expected(stack)["copies"]
        assert left["grants"] == 1

        # The dead process's lease expires; then the restarted CRM finishes the job on the
        # admin's repeated request.
        await eventually(lambda: lease_lapsed(world, midway["id"]))
        with run_process(
            ["-m", "crm_service"],
            env={**env, "TIMELINE_URL": timeline_url},
            ready_url=f"{base_url}/readyz",
        ):
            async with httpx.AsyncClient(base_url=base_url, timeout=120) as crm:
                resumed = await crm.post(path, headers=org.admin.headers)
        assert resumed.status_code == 200, resumed.text
        job = resumed.json()
        assert job["id"] == midway["id"]
        assert job["status"] == "completed", job["parts"]
        assert comparable(job["report"]) == comparable(expected_report), json.dumps(
            [job["report"], expected_report], sort_keys=True
        )
        # The parts done before the kill were not run again.
        for name in ("calendar", "tasks", "drive", "gmail"):
            finished = await deletion_job(world, others.org_id, rep.sub)
            assert finished is not None
            assert finished["parts"][name] == midway["parts"][name]

        # Nothing of theirs is left; the colleague's data is untouched.
        assert await held(world, others.org_id, rep.sub) == dict.fromkeys(expected(stack), 0)
        found = await scan(world, sorted(theirs), SCHEMAS)
        assert not found, [(hit["table"], hit["column"]) for hit in found]
        google_schemas = tuple(schema for schema in SCHEMAS if schema != "crm")
        hits = await scan(world, [rep.principal.email], google_schemas)
        assert naming_only_others(hits, {org.colleague.sub}) == []
        assert await held(world, others.org_id, org.colleague.sub) == colleague_before
        assert await live_channels(world, rep.principal.email) == []
        assert not await watching(world, rep.principal.email)

        # One request and one completion are audited, the completion with the report.
        audited = await rows(
            world,
            "SELECT action, changes FROM crm.audit_log WHERE org_id = :org "
            "AND record_type = 'user' AND record_id = :rep AND action LIKE 'google_data%' "
            "ORDER BY occurred_at",
            org=others.org_id,
            rep=rep.sub,
        )
        assert [row["action"] for row in audited] == [
            "google_data_delete_requested",
            "google_data_deleted",
        ]
        assert audited[1]["changes"] == {"job_id": job["id"], "deleted": job["report"]}


async def offboarding_job(world: World, org_id: str) -> dict[str, Any] | None:
    """The org's offboarding job as the CRM's table holds it (``None`` before it is written)."""
    found = await rows(
        world,
        "SELECT id::text AS id, status, parts FROM crm.data_deletions "
        "WHERE org_id = :org AND scope = 'org'",
        org=org_id,
    )
    assert len(found) <= 1, found
    return found[0] if found else None


@pytest.mark.slow
async def test_an_offboarding_whose_crm_process_is_killed_midway_finishes_and_leaves_nothing(
    world: World, users: Users
) -> None:
    """An org's offboarding runs in a CRM process killed while the timeline's part is on its
    way; a restarted CRM's scheduler finishes it once the dead process's lease lapsed (the
    org's admins are refused by then): the parts done before are not run again, no row of the
    org is left anywhere, and another org's rows are as they were."""
    others = users.other_org()
    async with running(world) as stack:
        org = await org_with_mail(stack, users)
        other_rep = others.make(Role.REP, teams=["t1"])
        (await world.crm.get("/api/users", headers=other_rep.headers)).raise_for_status()
        await with_google_data(stack, other_rep, "Other")
        await deliver(world, [other_rep.principal.email], "Other org")
        other_expected = {**expected(stack), "messages": 1, "copies": 2 + 1}
        await eventually(
            lambda: held(world, others.org_id, other_rep.sub),
            until=lambda counts: counts == other_expected,
        )
        other_before = await scan(world, [others.org_id], SCHEMAS)
        assert await org_rows(world, users.org_id)

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        timeline_url = str(stack.timeline.base_url).rstrip("/")
        env = {
            **world.service_env,
            "CRM_PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "CRM_LIFECYCLE_CALL_TIMEOUT_SECONDS": "600",
            # The killed process's hold on the job lapses soon after it dies.
            "CRM_LIFECYCLE_LEASE_SECONDS": "2",
            "CRM_JOBS_ENABLED": "false",
            # Few connections: the run shares the database server with every service here.
            "DATABASE_POOL_SIZE": "2",
            "DATABASE_MAX_OVERFLOW": "1",
        }
        confirm = {"confirm_org_id": users.org_id}
        with tcp_proxy(*server_of(timeline_url)) as to_timeline:
            to_timeline.stall()
            killed_env = {**env, "TIMELINE_URL": f"http://127.0.0.1:{to_timeline.port}"}
            with run_process(
                ["-m", "crm_service"], env=killed_env, ready_url=f"{base_url}/readyz"
            ) as first:
                async with httpx.AsyncClient(base_url=base_url, timeout=600) as crm:
                    request = asyncio.create_task(
                        crm.post("/api/org/offboard", json=confirm, headers=org.admin.headers)
                    )
                    # Calendar, tasks, drive and gmail have done their part; the timeline's
                    # call has left the CRM and is held on its way.
                    midway = await eventually(
                        lambda: offboarding_job(world, users.org_id),
                        until=lambda job: job is not None and done_before(job["parts"], "timeline"),
                        within=120,
                    )
                    await eventually(lambda: proxied(to_timeline))
                    first.send_signal(signal.SIGKILL)
                    assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
                    with pytest.raises(httpx.HTTPError):
                        await request
            # The held call never reaches the timeline.
            to_timeline.cut()
        assert midway is not None
        killed = await offboarding_job(world, users.org_id)
        assert killed is not None
        assert killed["status"] == "running"
        assert killed["parts"] == midway["parts"]
        assert await org_rows(world, users.org_id)  # the timeline's, the CRM's…

        # The org's admin is refused from now on: a restarted CRM's scheduler finishes the job
        # once the dead process's lease lapsed.
        await eventually(lambda: lease_lapsed(world, midway["id"]))
        with run_process(
            ["-m", "crm_service"],
            env={
                **env,
                "TIMELINE_URL": timeline_url,
                "CRM_JOBS_ENABLED": "true",
                "CRM_LIFECYCLE_RESUME_SECONDS": "1",
            },
            ready_url=f"{base_url}/readyz",
        ):
            finished = await eventually(
                lambda: offboarding_job(world, users.org_id),
                until=lambda job: job is not None and job["status"] == "completed",
                within=120,
            )
        assert finished is not None
        parts = finished["parts"]
        # The parts done before the kill were not run again; the others ran once.
        for name in ("calendar", "tasks", "drive", "gmail"):
            assert parts[name] == midway["parts"][name]
        assert all(part["state"] == "done" for part in parts.values()), parts
        assert parts["calendar"]["ended"]["events"] == 2
        assert parts["gmail"]["ended"]["messages"] == 4
        assert parts["timeline"]["ended"]["holders"] > 0
        assert parts["accounts"]["ended"]["grants"] == 3
        assert parts["crm"]["ended"]["users"] == 4

        # No row of the org is left anywhere but the job; nothing of it runs at Google.
        left = await org_rows(world, users.org_id)
        assert not left, sorted({(hit["table"], hit["column"]) for hit in left})
        for user in (org.rep, org.colleague, org.admin):
            assert await live_channels(world, user.principal.email) == []
            assert not await watching(world, user.principal.email)
        # The other org is untouched.
        assert await scan(world, [others.org_id], SCHEMAS) == other_before
        assert await held(world, others.org_id, other_rep.sub) == other_expected


async def test_two_requests_at_once_run_each_part_once_and_count_it_once(
    world: World, users: Users
) -> None:
    """While one request runs a deletion's parts (the timeline's answer held on its way back),
    a second request for the same job runs none: it answers the job as it stands, still
    running. The first finishes with the report of an uninterrupted deletion."""
    others = users.other_org()
    async with running(world, tasks_relayed=False) as stack:
        reference = await org_with_mail(stack, users)
        org = await org_with_mail(stack, others)
        single = await world.crm.post(
            f"/api/users/{reference.rep.sub}/delete-google-data", headers=reference.admin.headers
        )
        assert single.status_code == 201, single.text
        assert single.json()["status"] == "completed", single.json()["parts"]

        path = f"/api/users/{org.rep.sub}/delete-google-data"
        timeline_url = str(stack.timeline.base_url).rstrip("/")
        with (
            tcp_proxy(*server_of(timeline_url)) as to_timeline,
            environment("TIMELINE_URL", f"http://127.0.0.1:{to_timeline.port}"),
        ):
            to_timeline.hold_answers()
            first = asyncio.create_task(world.crm.post(path, headers=org.admin.headers))
            midway = await eventually(
                lambda: deletion_job(world, others.org_id, org.rep.sub),
                until=lambda job: job is not None and done_before(job["parts"], "timeline"),
            )
            await eventually(lambda: proxied(to_timeline))
            assert midway is not None

            second = await world.crm.post(path, headers=org.admin.headers)
            assert second.status_code == 200, second.text
            answered = second.json()
            assert answered["id"] == str(midway["id"])
            assert answered["status"] == "running"
            assert answered["parts"]["timeline"]["state"] == "pending"
            assert not first.done()

            to_timeline.restore()
            finished = await first
            # The second request called no part: the timeline saw one call, the first's.
            assert await proxied(to_timeline) == 1
        assert finished.status_code == 201, finished.text
        job = finished.json()
        assert job["status"] == "completed", job["parts"]
        assert comparable(job["report"]) == comparable(single.json()["report"]), json.dumps(
            [job["report"], single.json()["report"]], sort_keys=True
        )
        [done] = await rows(
            world,
            "SELECT changes FROM crm.audit_log WHERE caused_by = CAST(:id AS uuid)",
            id=job["audit_id"],
        )
        assert done["changes"]["deleted"] == job["report"]
        # The lease is let go at the end.
        [lease] = await rows(
            world,
            "SELECT lease_holder, lease_expires_at FROM crm.data_deletions "
            "WHERE id = CAST(:id AS uuid)",
            id=job["id"],
        )
        assert lease == {"lease_holder": None, "lease_expires_at": None}


async def held_by_a_dead_process(world: World, job_id: str) -> None:
    """The job's lease as a process that died leaves it: held, and expired."""
    engine = create_async_engine(world.database_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE crm.data_deletions SET lease_holder = 'a-dead-process', "
                    "lease_expires_at = now() - interval '1 minute' WHERE id = CAST(:id AS uuid)"
                ),
                {"id": job_id},
            )
            # It had claimed the resumer's turn under a longer interval, too.
            await connection.execute(
                text(
                    "INSERT INTO crm.job_schedule (name, due_at) "
                    "VALUES ('crm.resume-lifecycle-jobs', now() + interval '1 hour') "
                    "ON CONFLICT (name) DO UPDATE SET due_at = excluded.due_at"
                )
            )
    finally:
        await engine.dispose()


async def test_an_unfinished_deletion_whose_runner_died_is_finished_by_the_scheduler(
    world: World, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deletion left running (a part failed) and held by a process that died (its lease
    expired) is finished by a CRM's scheduler, with no request, with the report the parts
    done before gave."""
    # The tasks service does not answer at first: nothing listens where the CRM reaches it.
    monkeypatch.setenv("TASKS_URL", f"http://127.0.0.1:{free_port()}")
    async with running(world, with_tasks=False) as stack:
        org = await org_with_mail(stack, users)
        rep = org.rep
        first = await world.crm.post(
            f"/api/users/{rep.sub}/delete-google-data", headers=org.admin.headers
        )
        assert first.status_code == 201, first.text
        job = first.json()
        assert job["status"] == "running"
        assert job["parts"]["tasks"]["state"] == "failed"
        await held_by_a_dead_process(world, job["id"])

        async with tasks_under_test(world).start(**FAST_REFUSALS):
            settings = CrmSettings(
                **{**world.service_env, "jobs_enabled": True, "lifecycle_resume_seconds": 1}
            )
            with serve_in_thread(build_crm(settings)):
                finished = await eventually(
                    lambda: deletion_job(world, users.org_id, rep.sub),
                    until=lambda found: found is not None and found["status"] == "completed",
                    within=60,
                )
        assert finished is not None
        parts = finished["parts"]
        assert parts["tasks"]["state"] == "done"
        assert parts["accounts"]["ended"]["grants"] == 1
        # The parts done before were not run again.
        for name in ("calendar", "drive", "gmail", "timeline"):
            assert parts[name]["state"] == "done"
            assert parts[name]["ended"] == job["report"][name]
        assert await held(world, users.org_id, rep.sub) == dict.fromkeys(expected(stack), 0)
        [lease] = await rows(
            world,
            "SELECT lease_holder FROM crm.data_deletions WHERE id = CAST(:id AS uuid)",
            id=job["id"],
        )
        assert lease["lease_holder"] is None
