"""The tasks API against the Google emulator, with credentials from the accounts service."""

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio


def by_title(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {task["title"]: task for task in tasks}


async def test_task_lists_round_trip(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        client = service.client
        lists = (await client.get("/api/tasks/lists", headers=rep.headers)).json()["items"]
        assert [(entry["title"], entry["is_default"]) for entry in lists] == [("My Tasks", True)]
        created = await client.post("/api/tasks/lists", json={"name": "Deals"}, headers=rep.headers)
        assert created.status_code == 201, created.text
        list_id = created.json()["id"]
        assert created.json()["title"] == "Deals"
        renamed = await client.patch(
            f"/api/tasks/lists/{list_id}", json={"title": "Big deals"}, headers=rep.headers
        )
        assert renamed.json()["title"] == "Big deals"
        fetched = await client.get(f"/api/tasks/lists/{list_id}", headers=rep.headers)
        assert fetched.json()["title"] == "Big deals"
        titles = [
            entry["title"]
            for entry in (await client.get("/api/tasks/lists", headers=rep.headers)).json()["items"]
        ]
        assert titles == ["My Tasks", "Big deals"]
        task = await stack.create(service, rep, title="In the list", list_id=list_id)
        deleted = await client.delete(f"/api/tasks/lists/{list_id}", headers=rep.headers)
        assert deleted.status_code == 204
        gone = await client.get(f"/api/tasks/lists/{list_id}", headers=rep.headers)
        assert gone.status_code == 404
        titles = [
            entry["title"]
            for entry in (await client.get("/api/tasks/lists", headers=rep.headers)).json()["items"]
        ]
        assert titles == ["My Tasks"]
        deleted_task = await client.get(f"/api/tasks/{task['id']}", headers=rep.headers)
        assert deleted_task.json()["deleted"] is True
        assert len(await stack.published("tasks.task.deleted", task["id"])) == 1
        default_id = lists[0]["id"]
        refused = await client.delete(f"/api/tasks/lists/{default_id}", headers=rep.headers)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "path.list_id"


async def test_tasks_round_trip_with_subtasks_moves_and_clear_completed(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        client = service.client
        first = await stack.create(
            service, rep, name="Call back", description="about pricing", due_date="2030-03-04"
        )
        assert (first["title"], first["notes"], first["due"]) == (
            "Call back",
            "about pricing",
            "2030-03-04",
        )
        assert first["status"] == "needsAction"
        second = await stack.create(
            service, rep, title="Send deck", due="2030-03-05T23:30:00-05:00"
        )
        assert second["due"] == "2030-03-05"
        sub = await stack.create(service, rep, title="Print deck", parent_id=second["id"])
        assert sub["parent_id"] == second["id"]
        in_google = by_title(await stack.google_tasks(rep))
        assert in_google["Print deck"]["parent"] == in_google["Send deck"]["id"]
        assert in_google["Call back"]["due"] == "2030-03-04T00:00:00.000Z"

        moved = await client.post(
            f"/api/tasks/{first['id']}/move",
            json={"parent_id": second["id"], "previous_id": sub["id"]},
            headers=rep.headers,
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["parent_id"] == second["id"]
        in_google = by_title(await stack.google_tasks(rep))
        assert in_google["Call back"]["parent"] == in_google["Send deck"]["id"]
        assert in_google["Call back"]["position"] > in_google["Print deck"]["position"]
        back = await client.post(f"/api/tasks/{first['id']}/move", json={}, headers=rep.headers)
        assert back.json()["parent_id"] is None

        updated = await client.patch(
            f"/api/tasks/{first['id']}",
            json={"title": "Call back Ann", "due": None, "notes": "pricing v2"},
            headers=rep.headers,
        )
        assert (updated.json()["title"], updated.json()["due"], updated.json()["notes"]) == (
            "Call back Ann",
            None,
            "pricing v2",
        )
        completed = await client.post(f"/api/tasks/{first['id']}/complete", headers=rep.headers)
        assert completed.json()["status"] == "completed"
        assert completed.json()["completed_at"] is not None
        reopened = await client.post(f"/api/tasks/{first['id']}/reopen", headers=rep.headers)
        assert (reopened.json()["status"], reopened.json()["completed_at"]) == ("needsAction", None)
        await client.post(f"/api/tasks/{first['id']}/complete", headers=rep.headers)
        assert [
            e["status"] for e in await stack.published("tasks.task.completed", first["id"])
        ] == [
            "completed",
            "completed",
        ]

        listed = await client.get("/api/tasks", params={"status": "completed"}, headers=rep.headers)
        assert [task["id"] for task in listed.json()["items"]] == [first["id"]]
        due = await client.get(
            "/api/tasks",
            params={"due_min": "2030-03-05", "due_max": "2030-03-31"},
            headers=rep.headers,
        )
        assert [task["id"] for task in due.json()["items"]] == [second["id"]]
        # A number is not a day (pydantic alone would read 0 as 1970-01-01)
        as_number = await client.get("/api/tasks", params={"due_min": "0"}, headers=rep.headers)
        assert as_number.status_code == 422, as_number.text
        assert [e["field"] for e in as_number.json()["errors"]] == ["query.due_min"]

        list_id = first["list_id"]
        cleared = await client.post(f"/api/tasks/lists/{list_id}/clear", headers=rep.headers)
        assert cleared.status_code == 204
        await stack.idle(rep)
        visible = await client.get("/api/tasks", params={"list_id": list_id}, headers=rep.headers)
        assert {task["title"] for task in visible.json()["items"]} == {"Send deck", "Print deck"}
        hidden = (await client.get(f"/api/tasks/{first['id']}", headers=rep.headers)).json()
        assert hidden["hidden"] is True

        deleted = await client.delete(f"/api/tasks/{second['id']}", headers=rep.headers)
        assert deleted.status_code == 204
        for task in (second, sub):
            fetched = (await client.get(f"/api/tasks/{task['id']}", headers=rep.headers)).json()
            assert fetched["deleted"] is True
            assert len(await stack.published("tasks.task.deleted", task["id"])) == 1
        assert all(
            task["deleted"]
            for task in await stack.google_tasks(rep)
            if task["title"] != "Call back Ann"
        )
        remaining = await client.get("/api/tasks", headers=rep.headers)
        assert remaining.json()["items"] == []
    assert await stack.fidelity_violations() == []


async def test_a_task_list_created_twice_with_one_key_is_created_once_in_google(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        headers = {**rep.headers, "Idempotency-Key": "list-1"}
        first = await service.client.post("/api/tasks/lists", json={"title": "Q3"}, headers=headers)
        again = await service.client.post("/api/tasks/lists", json={"title": "Q3"}, headers=headers)
        other = await service.client.post("/api/tasks/lists", json={"title": "Q4"}, headers=headers)
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await stack.calls(rep, "tasks.tasklists.insert")) == 1


async def test_a_method_the_task_lists_path_lacks_is_a_405_not_a_task_id(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    async with stack.start() as service:
        client = service.client
        patched = await client.patch("/api/tasks/lists", json={"title": "x"}, headers=rep.headers)
        assert patched.status_code == 405, patched.text
        assert set(patched.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
        not_an_id = await client.get("/api/tasks/not-a-task", headers=rep.headers)
        assert not_an_id.status_code == 404, not_an_id.text
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "/api/tasks/{task_id}" in paths
        assert not [path for path in paths if ":uuid" in path]
