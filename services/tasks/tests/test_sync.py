"""The poll: what changes in Google Tasks reaches the mirror, the events and the timeline once."""

from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.waiting import eventually
from timeline_service.app import build_app as build_timeline
from timeline_service.settings import TimelineSettings

pytestmark = pytest.mark.asyncio

ROUTING_KEYS = (
    "tasks.task.created",
    "tasks.task.updated",
    "tasks.task.completed",
    "tasks.task.deleted",
)


async def events_of(stack: Any, task_id: str) -> list[tuple[str, int]]:
    found = []
    for key in ROUTING_KEYS:
        found += [(key, data["version"]) for data in await stack.published(key, task_id)]
    return sorted(found, key=lambda pair: pair[1])


async def timeline_items(timeline: Any, user: Any, lead_id: str) -> list[dict[str, Any]]:
    answer = await timeline.get(f"/api/timeline/lead/{lead_id}", headers=user.headers)
    items: list[dict[str, Any]] = answer.json()["items"] if answer.status_code == 200 else []
    return [item for item in items if item["kind"] == "task"]


async def test_a_task_completed_in_google_is_polled_published_once_and_shown_completed(
    stack: Any, users: Users, open_service: OpenService
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    lead_id = await stack.lead(rep)
    async with (
        stack.start() as service,
        open_service(build_timeline, TimelineSettings, CRM_URL=stack.crm_url) as timeline,
    ):
        task = await stack.create(
            service, rep, title="Send the contract", links=[{"type": "lead", "id": lead_id}]
        )
        shown = await eventually(lambda: timeline_items(timeline, rep, lead_id))
        assert [(item["title"], item["status"]) for item in shown] == [
            ("Send the contract", "needsAction")
        ]
        await stack.poll(service, rep)
        assert await events_of(stack, task["id"]) == [("tasks.task.created", 1)]

        await stack.seed(rep, "@default", {"id": task["google_id"], "status": "completed"})
        # Completed on the phone: Google hides it, and lists it only with showHidden.
        [in_google] = [t for t in await stack.google_tasks(rep) if t["id"] == task["google_id"]]
        assert in_google.get("hidden") is True
        before = len(await stack.calls(rep, "tasks.tasks.list"))
        await stack.poll(service, rep)
        polls = (await stack.calls(rep, "tasks.tasks.list"))[before:]
        assert polls
        assert all("updatedMin" in call["query"] for call in polls)
        assert all(call["query"].get("showDeleted") == "true" for call in polls)
        assert all(call["query"].get("showHidden") == "true" for call in polls)

        mirrored = (
            await service.client.get(f"/api/tasks/{task['id']}", headers=rep.headers)
        ).json()
        assert (mirrored["status"], mirrored["version"], mirrored["hidden"]) == (
            "completed",
            2,
            True,
        )
        done = await service.client.get(
            "/api/tasks", params={"status": "completed"}, headers=rep.headers
        )
        assert [item["id"] for item in done.json()["items"]] == [task["id"]]
        completed = await stack.published("tasks.task.completed", task["id"])
        assert len(completed) == 1
        assert completed[0]["links"] == [{"type": "lead", "id": lead_id}]
        assert completed[0]["timeline"]["kind"] == "task"
        assert completed[0]["timeline"]["status"] == "completed"
        shown = await eventually(
            lambda: timeline_items(timeline, rep, lead_id),
            until=lambda items: [item["status"] for item in items] == ["completed"],
        )
        assert len(shown) == 1

        await stack.poll(service, rep)
        assert await events_of(stack, task["id"]) == [
            ("tasks.task.created", 1),
            ("tasks.task.completed", 2),
        ]


async def test_a_task_deleted_in_google_is_marked_deleted_once_without_a_second_item(
    stack: Any, users: Users, open_service: OpenService
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    lead_id = await stack.lead(rep)
    async with (
        stack.start() as service,
        open_service(build_timeline, TimelineSettings, CRM_URL=stack.crm_url) as timeline,
    ):
        task = await stack.create(
            service, rep, title="Book a demo", links=[{"type": "lead", "id": lead_id}]
        )
        await stack.poll(service, rep)
        await stack.seed(rep, "@default", {"id": task["google_id"], "deleted": True})
        await stack.poll(service, rep)
        await stack.poll(service, rep)
        mirrored = (
            await service.client.get(f"/api/tasks/{task['id']}", headers=rep.headers)
        ).json()
        assert mirrored["deleted"] is True
        assert await events_of(stack, task["id"]) == [
            ("tasks.task.created", 1),
            ("tasks.task.deleted", 2),
        ]
        listed = await service.client.get("/api/tasks", headers=rep.headers)
        assert listed.json()["items"] == []
        shown = await eventually(
            lambda: timeline_items(timeline, rep, lead_id),
            until=lambda items: [item["status"] for item in items] == ["deleted"],
        )
        assert len(shown) == 1


async def test_tasks_made_in_google_lists_and_lists_deleted_in_google_reach_the_mirror(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        client = service.client
        side = (
            await client.post("/api/tasks/lists", json={"title": "Side"}, headers=rep.headers)
        ).json()
        await stack.poll(service, rep)
        seeded = await stack.seed(rep, side["google_id"], {"title": "From the phone"})
        await stack.poll(service, rep)
        found = await client.get("/api/tasks", params={"list_id": side["id"]}, headers=rep.headers)
        [task] = found.json()["items"]
        assert (task["title"], task["google_id"]) == ("From the phone", seeded["id"])
        assert len(await stack.published("tasks.task.created", task["id"])) == 1

        await stack.google.admin(
            "POST", "/faults", json={"api_method": "tasks.tasks.list", "status": 503, "count": 1}
        )
        await stack.seed(
            rep, side["google_id"], {"id": seeded["id"], "title": "Renamed on the phone"}
        )
        await stack.poll(service, rep)  # the first attempt meets a 503: retried
        fetched = (await client.get(f"/api/tasks/{task['id']}", headers=rep.headers)).json()
        assert fetched["title"] == "Renamed on the phone"
        assert len(await stack.published("tasks.task.updated", task["id"])) == 1

        deleted = await stack.google_call(
            rep, "DELETE", f"/tasks/v1/users/@me/lists/{side['google_id']}"
        )
        assert deleted.status_code == 204
        await stack.poll(service, rep)
        assert (
            await client.get(f"/api/tasks/lists/{side['id']}", headers=rep.headers)
        ).status_code == 404
        fetched = (await client.get(f"/api/tasks/{task['id']}", headers=rep.headers)).json()
        assert fetched["deleted"] is True
        assert len(await stack.published("tasks.task.deleted", task["id"])) == 1


async def test_the_default_list_is_googles_default_whatever_order_lists_come_in(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    made = await stack.google_call(
        rep, "POST", "/tasks/v1/users/@me/lists", json={"title": "Acme deals"}
    )
    assert made.status_code == 200
    listed = await stack.google_call(rep, "GET", "/tasks/v1/users/@me/lists")
    assert listed.json()["items"][0]["title"] == "Acme deals"  # Google promises no order
    async with stack.start() as service:
        lists = await service.client.get("/api/tasks/lists", headers=rep.headers)
        assert lists.status_code == 200
        assert {t["title"]: t["is_default"] for t in lists.json()["items"]} == {
            "My Tasks": True,
            "Acme deals": False,
        }
        task = await stack.create(service, rep, title="Call back")
        await stack.poll(service, rep)
        lists = await service.client.get("/api/tasks/lists", headers=rep.headers)
        [default] = [t for t in lists.json()["items"] if t["is_default"]]
        assert default["title"] == "My Tasks"
    assert task["google_id"] in {t["id"] for t in await stack.google_tasks(rep)}
    asked = await stack.calls(rep, "tasks.tasklists.get")
    assert {call["path"] for call in asked} == {"/tasks/v1/users/@me/lists/@default"}


async def test_a_user_who_disconnected_google_is_skipped_by_the_poll(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        await stack.create(service, rep, title="Before leaving")
        await stack.poll(service, rep)
        async with httpx.AsyncClient(base_url=stack.google.accounts_url) as accounts:
            gone = await accounts.delete("/api/accounts/google", headers=rep.headers)
        assert gone.status_code == 204
        await stack.poll(service, rep)
        # Dropped with the connection (or done), never asked for again.
        assert not await stack.pending_poll(rep)
        refused = await service.client.post("/api/tasks", json={"title": "x"}, headers=rep.headers)
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("google-not-connected")
