"""A user asks for their Google data to be deleted: an admin asks the CRM, every service deletes
what came from that account (mirrored events, tasks and mail, sync state, channels and watches
stopped at Google, the timeline copies only they held) and the accounts service forgets the
grant. Afterwards no table of any service holds their Google ids or their e-mail, while a
colleague's data is untouched; a job a service did not answer is finished by the next request
with the same report."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.servers import free_port
from pipedesk_testkit.service import World
from pipedesk_testkit.waiting import eventually
from tests.test_user_lifecycle import (
    FAST_REFUSALS,
    Org,
    Stack,
    live_channels,
    org_with_drive,
    rows,
    running,
    tasks_under_test,
    watched_mailbox,
    watching,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]

BUYER = "buyer@customer.example"
# Every schema a service of the system keeps its tables in.
SCHEMAS = ("accounts", "calendar", "crm", "drive", "gmail", "tasks", "timeline")
TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "ARRAY")


async def scan(world: World, needles: list[str], schemas: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every row of every table of ``schemas`` (read from information_schema) whose text, JSON,
    array or byte columns contain one of ``needles``: its schema, table, column and row."""
    columns = await rows(
        world,
        "SELECT table_schema, table_name, column_name, data_type "
        "FROM information_schema.columns c "
        "WHERE table_schema = ANY(:schemas) AND EXISTS (SELECT 1 FROM information_schema.tables t"
        " WHERE t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " AND t.table_type = 'BASE TABLE') ORDER BY 1, 2, 3",
        schemas=list(schemas),
    )
    assert {column["table_schema"] for column in columns} == set(schemas)
    patterns = [f"%{needle.lower()}%" for needle in needles]
    found: list[dict[str, Any]] = []
    for column in columns:
        schema, table, name = column["table_schema"], column["table_name"], column["column_name"]
        if column["data_type"] in TEXT_TYPES:
            condition = f'lower("{name}"::text) LIKE ANY(:patterns)'
        elif column["data_type"] == "bytea":
            condition = f"lower(encode(\"{name}\", 'escape')) LIKE ANY(:patterns)"
        else:
            continue
        hits = await rows(
            world,
            f'SELECT to_jsonb(t) AS row FROM "{schema}"."{table}" t WHERE {condition}',
            patterns=patterns,
        )
        found += [{"table": f"{schema}.{table}", "column": name, **hit} for hit in hits]
    return found


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
    event = await stack.calendar.client.post(
        "/api/calendar/events",
        json={
            "title": f"{title} kick-off",
            "start": "2030-03-04T10:00:00Z",
            "end": "2030-03-04T11:00:00Z",
            "attendees": [BUYER],
        },
        headers=user.headers,
    )
    assert event.status_code == 201, event.text
    if stack.tasks is not None:
        task = await stack.tasks.client.post(
            "/api/tasks", json={"title": f"{title} follow-up"}, headers=user.headers
        )
        assert task.status_code == 201, task.text


def expected(stack: Stack) -> dict[str, int]:
    """What ``with_google_data`` and the two deliveries leave a user: one event, one task, two
    messages in one mailbox, a timeline copy of each, a grant (no task without Tasks)."""
    tasks = 1 if stack.tasks is not None else 0
    return {
        "events": 1,
        "tasks": tasks,
        "messages": 2,
        "mailboxes": 1,
        "copies": 3 + tasks,
        "grants": 1,
    }


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
    async with running(world) as stack:
        org = await org_with_mail(stack, users)
        rep, colleague, admin = org.rep, org.colleague, org.admin
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
        assert list(report) == ["calendar", "tasks", "drive", "gmail", "timeline", "accounts"]
        assert report["calendar"]["channels"] >= 1
        assert report["calendar"]["events"] == 1
        assert report["tasks"]["tasks"] == 1
        assert report["drive"]["google_accounts"] == 1
        assert report["gmail"]["watches"] == 1
        assert report["gmail"]["messages"] == 2
        assert report["gmail"]["mailboxes"] == 1
        # The event, the task and the message only they held leave; the one both held stays.
        assert report["timeline"] == {"copies": 4, "items": 3}
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
        lead = await world.crm.post("/api/leads", json={"title": "Acme"}, headers=org.rep.headers)
        assert lead.status_code == 201, lead.text
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

        # No row of the org is left anywhere but the job; nothing of it runs at Google.
        left = await org_rows(world, users.org_id)
        assert not left, sorted({(hit["table"], hit["column"]) for hit in left})
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
