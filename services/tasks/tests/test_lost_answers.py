"""Google stored a create but its answer was lost (an error, a cut-off answer): the create is
looked up, never sent again blindly, so Google holds it once; Google's refusals become problems
the caller can act on (a spent quota: 503 with a Retry-After; a grant without Tasks: reconnect)."""

from __future__ import annotations

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users

pytestmark = pytest.mark.asyncio

PROBLEM = "urn:pipedesk:problem:"
LOST_ANSWERS = [
    pytest.param({"status": 503}, id="503"),
    pytest.param({"status": 500}, id="500"),
    pytest.param({"status": 0, "drop": True}, id="cut-off"),
]


async def stored_then_failed(
    stack: Any, user: ActingUser, method: str, how: dict[str, Any]
) -> None:
    """Google carries out the user's next ``method`` call, then its answer fails ``how``."""
    fault = {"api_method": method, "after_store": True, "user": user.principal.email, **how}
    await stack.google.admin("POST", "/faults", json=fault)


@pytest.mark.parametrize("how", LOST_ANSWERS)
async def test_a_task_whose_answer_was_lost_is_created_once(
    stack: Any, users: Users, how: dict[str, Any]
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        await stack.create(service, rep, title="Warm-up")  # the default list is mirrored
        await stored_then_failed(stack, rep, "tasks.tasks.insert", how)
        created = await stack.create(service, rep, title="Call Acme", notes="re: renewal")
        assert created["title"] == "Call Acme"
        await stack.poll(service, rep)
        listed = await service.client.get("/api/tasks", headers=rep.headers)
        acme = [task for task in listed.json()["items"] if task["title"] == "Call Acme"]
    in_google = [task for task in await stack.google_tasks(rep) if task["title"] == "Call Acme"]
    assert len(in_google) == 1
    assert in_google[0]["id"] == created["google_id"]
    assert [task["id"] for task in acme] == [created["id"]]
    inserts = await stack.calls(rep, "tasks.tasks.insert")
    assert len(inserts) == 2  # the warm-up, and this one: sent once, then looked up


@pytest.mark.parametrize("how", LOST_ANSWERS)
async def test_a_task_list_whose_answer_was_lost_is_created_once(
    stack: Any, users: Users, how: dict[str, Any]
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        await stored_then_failed(stack, rep, "tasks.tasklists.insert", how)
        answer = await service.client.post(
            "/api/tasks/lists", json={"title": "Renewals"}, headers=rep.headers
        )
        assert answer.status_code == 201, answer.text
        created = answer.json()
        lists = await service.client.get("/api/tasks/lists", headers=rep.headers)
        renewals = [item for item in lists.json()["items"] if item["title"] == "Renewals"]
    in_google = await stack.google_call(rep, "GET", "/tasks/v1/users/@me/lists")
    titled = [item for item in in_google.json()["items"] if item["title"] == "Renewals"]
    assert [item["id"] for item in titled] == [created["google_id"]]
    assert [item["id"] for item in renewals] == [created["id"]]
    assert len(await stack.calls(rep, "tasks.tasklists.insert")) == 1


async def test_a_task_change_whose_answer_was_lost_is_simply_sent_again(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        task = await stack.create(service, rep, title="Draft")
        await stored_then_failed(stack, rep, "tasks.tasks.patch", {"status": 503})
        changed = await service.client.patch(
            f"/api/tasks/{task['id']}", json={"title": "Final"}, headers=rep.headers
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["title"] == "Final"
    assert len(await stack.calls(rep, "tasks.tasks.patch")) == 2
    [in_google] = [
        item for item in await stack.google_tasks(rep) if item["id"] == task["google_id"]
    ]
    assert in_google["title"] == "Final"
