"""Who may link, read, change and assign tasks; bad input is refused naming the field."""

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio


def fields(answer: Any) -> list[str]:
    assert answer.headers["content-type"] == "application/problem+json"
    return [error["field"] for error in answer.json().get("errors") or []]


async def test_a_rep_cannot_link_to_or_read_tasks_of_a_lead_they_cannot_see(
    stack: Any, users: Users
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    other = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    stranger = users.other_org().make(Role.ADMIN)
    for user in (owner, other, stranger):
        await stack.connect(user)
    lead_id = await stack.lead(owner)
    link = [{"type": "lead", "id": lead_id}]
    async with stack.start() as service:
        client = service.client
        task = await stack.create(service, owner, title="Quote", links=link)
        for intruder in (other, stranger):
            linked = await client.post(
                "/api/tasks", json={"title": "Mine now", "links": link}, headers=intruder.headers
            )
            assert linked.status_code == 404
            assert fields(linked) == ["body.links.0"]
            by_record = await client.get(
                "/api/tasks",
                params={"record_type": "lead", "record_id": lead_id},
                headers=intruder.headers,
            )
            assert by_record.status_code == 404
            for method, path in (
                ("GET", f"/api/tasks/{task['id']}"),
                ("PATCH", f"/api/tasks/{task['id']}"),
                ("POST", f"/api/tasks/{task['id']}/complete"),
                ("DELETE", f"/api/tasks/{task['id']}"),
            ):
                refused = await client.request(
                    method,
                    path,
                    headers=intruder.headers,
                    **({"json": {}} if method == "PATCH" else {}),
                )
                assert refused.status_code == 404, (method, path)
        assert titles(await stack.google_tasks(other)) == []

        readable = await client.get(f"/api/tasks/{task['id']}", headers=manager.headers)
        assert readable.status_code == 200
        unchangeable = await client.post(
            f"/api/tasks/{task['id']}/complete", headers=manager.headers
        )
        assert unchangeable.status_code == 403
        by_record = await client.get(
            "/api/tasks",
            params={"record_type": "lead", "record_id": lead_id},
            headers=manager.headers,
        )
        assert [item["id"] for item in by_record.json()["items"]] == [task["id"]]
        list_path = f"/api/tasks/lists/{task['list_id']}"
        for intruder in (other, stranger):
            assert (await client.get(list_path, headers=intruder.headers)).status_code == 404
            renamed = await client.patch(list_path, json={"title": "x"}, headers=intruder.headers)
            assert renamed.status_code == 404
        unauthenticated = await client.get(f"/api/tasks/{task['id']}")
        assert unauthenticated.status_code == 401


def titles(tasks: list[dict[str, Any]]) -> list[str]:
    return [task["title"] for task in tasks]


async def test_roles_without_the_permission_are_refused(stack: Any, users: Users) -> None:
    viewer = users.make(Role.VIEWER)
    await stack.connect(viewer)
    async with stack.start() as service:
        refused = await service.client.post(
            "/api/tasks", json={"title": "x"}, headers=viewer.headers
        )
        assert refused.status_code == 403
        refused = await service.client.post(
            "/api/tasks/lists", json={"title": "x"}, headers=viewer.headers
        )
        assert refused.status_code == 403


async def test_bad_input_is_refused_naming_the_field(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    other = users.make(Role.REP)
    await stack.connect(rep)
    await stack.connect(other)
    async with stack.start() as service:
        client = service.client
        cases = [
            ({"title": "a", "due": "2030-02-30"}, 422, ["body.due"]),
            ({"title": "a", "due": "tomorrow"}, 422, ["body.due"]),
            ({"title": "a", "due_date": "2030-03-04T10:00:00"}, 422, ["body.due"]),
            ({"title": "a", "name": "b"}, 422, ["body.title", "body.name"]),
            ({"notes": "no title"}, 422, ["body.title"]),
            (
                {"title": "a", "list_id": "01a21490-0000-7000-8000-000000000000"},
                404,
                ["body.list_id"],
            ),
            (
                {"title": "a", "parent_id": "01a21490-0000-7000-8000-000000000000"},
                404,
                ["body.parent_id"],
            ),
        ]
        for body, status, named in cases:
            answer = await client.post("/api/tasks", json=body, headers=rep.headers)
            assert answer.status_code == status, (body, answer.text)
            assert fields(answer) == named, body
        lists = (await client.get("/api/tasks/lists", headers=other.headers)).json()
        others_list = lists["items"][0]
        answer = await client.post(
            "/api/tasks", json={"title": "a", "list_id": others_list["id"]}, headers=rep.headers
        )
        assert answer.status_code == 404
        assert fields(answer) == ["body.list_id"]
        answer = await client.get(
            "/api/tasks", params={"list_id": others_list["id"]}, headers=rep.headers
        )
        assert answer.status_code == 404
        assert fields(answer) == ["query.list_id"]
        task = await stack.create(service, rep, title="ok")
        answer = await client.patch(
            f"/api/tasks/{task['id']}", json={"due": "2030-13-01"}, headers=rep.headers
        )
        assert answer.status_code == 422
        assert fields(answer) == ["body.due"]
        answer = await client.post(
            f"/api/tasks/{task['id']}/move", json={"parent_id": task["id"]}, headers=rep.headers
        )
        assert answer.status_code == 422
        assert fields(answer) == ["body.parent_id"]
    assert titles(await stack.google_tasks(rep)) == ["ok"]


async def test_assigning_creates_the_task_in_the_assignees_google_tasks(
    stack: Any, users: Users
) -> None:
    manager = users.make(Role.MANAGER)
    rep = users.make(Role.REP)
    outsider = users.other_org().make(Role.REP)
    for user in (manager, rep, outsider):
        await stack.connect(user)
    async with stack.start() as service:
        client = service.client
        task = await stack.create(
            service, manager, title="Call Acme", assignee_id=rep.sub, due="2030-04-01"
        )
        assert (task["owner_id"], task["assigned_by"]) == (rep.sub, manager.sub)
        assert titles(await stack.google_tasks(rep)) == ["Call Acme"]
        assert titles(await stack.google_tasks(manager)) == []
        [created] = await stack.published("tasks.task.created", task["id"])
        assert (created["owner_id"], created["assigned_by"]) == (rep.sub, manager.sub)

        mine = await client.get("/api/tasks", headers=rep.headers)
        assert [item["id"] for item in mine.json()["items"]] == [task["id"]]
        assigned = await client.get(
            "/api/tasks", params={"assigned_by_me": True}, headers=manager.headers
        )
        assert [item["id"] for item in assigned.json()["items"]] == [task["id"]]
        done = await client.post(f"/api/tasks/{task['id']}/complete", headers=rep.headers)
        assert done.json()["status"] == "completed"

        for assignee in (outsider.sub, "nobody-at-all"):
            refused = await client.post(
                "/api/tasks",
                json={"title": "Nope", "assignee_id": assignee},
                headers=manager.headers,
            )
            assert refused.status_code == 422
            assert fields(refused) == ["body.assignee_id"]
        assert titles(await stack.google_tasks(outsider)) == []


async def test_an_assignee_is_found_in_the_crm_directory_which_gives_their_email(
    stack: Any, users: Users
) -> None:
    manager, rep, newcomer = (users.make(role) for role in (Role.MANAGER, Role.REP, Role.REP))
    for user in (manager, rep):
        await stack.connect(user)
    async with stack.start() as service:
        task = await stack.create(service, manager, title="Call Acme", assignee_id=rep.sub)
        [created] = await stack.published("tasks.task.created", task["id"])
        assert created["timeline"]["participants"] == [rep.principal.email]
        # Known to the directory, without Google Tasks connected: refused, naming the field.
        (await stack.crm.get("/api/users", headers=newcomer.headers)).raise_for_status()
        refused = await service.client.post(
            "/api/tasks",
            json={"title": "Nope", "assignee_id": newcomer.sub},
            headers=manager.headers,
        )
        assert refused.status_code == 422
        assert fields(refused) == ["body.assignee_id"]


async def test_a_link_the_assignee_cannot_read_is_hidden_and_kept_when_they_replace_links(
    stack: Any, users: Users
) -> None:
    manager = users.make(Role.MANAGER, teams=["t1"])
    rep = users.make(Role.REP, teams=["t2"])
    for user in (manager, rep):
        await stack.connect(user)
    secret_lead = await stack.lead(manager, "Manager's account")
    own_lead = await stack.lead(rep, "Rep's account")
    async with stack.start() as service:
        client = service.client
        task = await stack.create(
            service,
            manager,
            title="Prepare the quote",
            assignee_id=rep.sub,
            links=[{"type": "lead", "id": secret_lead}],
        )
        path = f"/api/tasks/{task['id']}"
        seen = await client.get(path, headers=rep.headers)
        assert seen.status_code == 200, seen.text
        assert seen.json()["links"] == [{"type": "lead", "id": None, "hidden": True}]
        assert secret_lead not in seen.text
        listed = await client.get("/api/tasks", headers=rep.headers)
        assert secret_lead not in listed.text

        replaced = await client.patch(
            path, json={"links": [{"type": "lead", "id": own_lead}]}, headers=rep.headers
        )
        assert replaced.status_code == 200, replaced.text
        assert sorted(replaced.json()["links"], key=lambda link: link["hidden"]) == [
            {"type": "lead", "id": own_lead, "hidden": False},
            {"type": "lead", "id": None, "hidden": True},
        ]
        cleared = await client.patch(path, json={"links": []}, headers=rep.headers)
        assert cleared.json()["links"] == [{"type": "lead", "id": None, "hidden": True}]

        as_manager = (await client.get(path, headers=manager.headers)).json()
        assert as_manager["links"] == [{"type": "lead", "id": secret_lead, "hidden": False}]
