"""A retried create never makes a second Google task, even after a crash between Google's answer
and our commit (Google Tasks takes no ids from clients)."""

import asyncio
from typing import Any

import pytest

import tasks_service.service
from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users
from tasks_service.repository import TasksRepository
from tasks_service.sync import TasksPoll

pytestmark = pytest.mark.asyncio


class Crash(RuntimeError):
    """The process dies right after Google created the task, before anything is committed."""


async def crash(*_args: Any, **_kwargs: Any) -> Any:
    raise Crash


def titled(tasks: list[dict[str, Any]], title: str) -> list[dict[str, Any]]:
    return [task for task in tasks if task["title"] == title]


async def test_a_retried_create_answers_the_same_task_and_makes_one(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    body = {"title": "Follow up", "due": "2030-05-01"}
    headers = {**rep.headers, "Idempotency-Key": "follow-up-1"}
    async with stack.start() as service:
        first = await service.client.post("/api/tasks", json=body, headers=headers)
        again = await service.client.post(
            "/api/tasks", json={"name": "Follow up", "due_date": "2030-05-01"}, headers=headers
        )
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["id"] == first.json()["id"]
        reused = await service.client.post(
            "/api/tasks", json={"title": "Something else"}, headers=headers
        )
        assert reused.status_code == 422
        assert reused.json()["errors"][0]["field"] == "header.idempotency-key"
    assert len(titled(await stack.google_tasks(rep), "Follow up")) == 1
    assert len(await stack.published("tasks.task.created", first.json()["id"])) == 1


@pytest.mark.parametrize("polled_first", [False, True], ids=["retried", "polled-then-retried"])
async def test_a_create_that_crashed_after_google_answered_is_reconciled_not_repeated(
    stack: Any, users: Users, monkeypatch: pytest.MonkeyPatch, polled_first: bool
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    lead_id = await stack.lead(rep)
    body = {"title": "Send proposal", "notes": "v3", "links": [{"type": "lead", "id": lead_id}]}
    headers = {**rep.headers, "Idempotency-Key": "proposal-7"}
    async with stack.start() as crashing:
        with monkeypatch.context() as patched:
            patched.setattr(tasks_service.service, "record_created", crash)
            died = await crashing.client.post("/api/tasks", json=body, headers=headers)
        assert died.status_code == 500
    assert len(titled(await stack.google_tasks(rep), "Send proposal")) == 1
    async with stack.start() as restarted:
        if polled_first:
            await stack.poll(restarted, rep)
        retried = await restarted.client.post("/api/tasks", json=body, headers=headers)
        assert retried.status_code == 200, retried.text
        task = retried.json()
        assert task["links"] == [{"type": "lead", "id": lead_id, "hidden": False}]
        assert task["notes"] == "v3"
        await stack.poll(restarted, rep)
        listed = await restarted.client.get("/api/tasks", headers=rep.headers)
        assert [item["id"] for item in listed.json()["items"]] == [task["id"]]
    [in_google] = titled(await stack.google_tasks(rep), "Send proposal")
    assert in_google["id"] == task["google_id"]
    created = await stack.published("tasks.task.created", task["id"])
    assert len(created) == 1
    assert created[0]["links"] == [{"type": "lead", "id": lead_id}]


async def test_a_create_that_died_before_reaching_google_is_made_by_the_retry(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    headers = {**rep.headers, "Idempotency-Key": "never-reached"}
    async with stack.start() as service:
        await stack.google.admin(
            "POST", "/faults", json={"api_method": "tasks.tasks.insert", "status": 400, "count": 1}
        )
        refused = await service.client.post(
            "/api/tasks", json={"title": "Retry me"}, headers=headers
        )
        assert refused.status_code == 502
        assert titled(await stack.google_tasks(rep), "Retry me") == []
        retried = await service.client.post(
            "/api/tasks", json={"title": "Retry me"}, headers=headers
        )
        assert retried.status_code == 200, retried.text
        assert retried.json()["title"] == "Retry me"
    assert len(titled(await stack.google_tasks(rep), "Retry me")) == 1


async def test_concurrent_requests_with_one_key_make_one_task(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    headers = {**rep.headers, "Idempotency-Key": "double-click"}
    async with stack.start() as first, stack.start() as second:
        # Both apps live in this one test process and share the route modules' parameter
        # objects, which FastAPI completes on an app's first request: one request each first,
        # so that the two threads never do it at once (two real processes never share them).
        for service in (first, second):
            assert (await service.client.get("/api/tasks", headers=rep.headers)).status_code == 200
        answers = await asyncio.gather(
            *(
                service.client.post("/api/tasks", json={"title": "Only once"}, headers=headers)
                for service in (first, second, first, second)
            )
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}, statuses
    ids = {answer.json()["id"] for answer in answers if answer.status_code in {200, 201}}
    assert len(ids) == 1
    for answer in answers:
        if answer.status_code == 409:
            assert answer.headers["retry-after"] == "5"
    assert len(titled(await stack.google_tasks(rep), "Only once")) == 1


async def test_a_create_whose_process_died_is_retried_once_its_lease_ran_out(
    stack: Any, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    headers = {**rep.headers, "Idempotency-Key": "died-holding-it"}
    body = {"title": "Survives the crash"}

    async def keep_the_lease(*_args: Any, **_kwargs: Any) -> None:
        """A dead process releases nothing."""

    async with stack.start() as crashing:
        with monkeypatch.context() as patched:
            patched.setattr(tasks_service.service, "record_created", crash)
            patched.setattr(TasksRepository, "release_pending", keep_the_lease)
            died = await crashing.client.post("/api/tasks", json=body, headers=headers)
        assert died.status_code == 500
    async with stack.start() as restarted:
        early = await restarted.client.post("/api/tasks", json=body, headers=headers)
        assert early.status_code == 409
        assert early.headers["retry-after"] == "5"
        # The lease runs out (TASKS_CREATE_LEASE_SECONDS after the dead request took it).
        await stack.execute(
            "UPDATE tasks.tasks SET creating_until = now() - interval '1 second'"
            " WHERE google_id IS NULL AND title = :title",
            title=body["title"],
        )
        retried = await restarted.client.post("/api/tasks", json=body, headers=headers)
        assert retried.status_code == 200, retried.text
    [in_google] = titled(await stack.google_tasks(rep), "Survives the crash")
    assert in_google["id"] == retried.json()["google_id"]
    assert len(await stack.published("tasks.task.created", retried.json()["id"])) == 1


async def test_creates_nobody_retried_are_settled_by_the_prune_job(
    stack: Any, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        with monkeypatch.context() as patched:
            patched.setattr(tasks_service.service, "record_created", crash)
            died = await service.client.post(
                "/api/tasks", json={"title": "Made, never recorded"}, headers=rep.headers
            )
        assert died.status_code == 500
        await stack.google.admin(
            "POST", "/faults", json={"api_method": "tasks.tasks.insert", "status": 400, "count": 1}
        )
        refused = await service.client.post(
            "/api/tasks", json={"title": "Never made"}, headers=rep.headers
        )
        assert refused.status_code == 502
        pending = "SELECT count(*) FROM tasks.tasks WHERE google_id IS NULL AND user_id = :user"
        assert await stack.scalar(pending, user=rep.sub) == 2
        # A day passes without a retry.
        await stack.execute(
            "UPDATE tasks.tasks SET created_at = created_at - interval '25 hours'"
            " WHERE google_id IS NULL AND user_id = :user",
            user=rep.sub,
        )
        settled = await service.run_job("tasks.prune")
        assert settled["result"] >= 2
        assert await stack.scalar(pending, user=rep.sub) == 0
        listed = await service.client.get("/api/tasks", headers=rep.headers)
        [task] = listed.json()["items"]
        assert task["title"] == "Made, never recorded"
        assert len(await stack.published("tasks.task.created", task["id"])) == 1
    assert titles_in(await stack.google_tasks(rep)) == ["Made, never recorded"]


def titles_in(tasks: list[dict[str, Any]]) -> list[str]:
    return [task["title"] for task in tasks]


async def test_a_poll_during_a_create_leaves_the_task_to_the_create_and_makes_no_second_row(
    stack: Any, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        runtime = service.runtime
        real_record_created = tasks_service.service.record_created
        polled: list[Any] = []

        async def record_while_a_poll_runs(
            session: Any, writer: Any, tasklist: Any, resource: Any, task_id: Any, **kwargs: Any
        ) -> Any:
            # The create holds its pending row, as it does while recording Google's answer, and
            # the poll finds the new Google task at that moment.
            await TasksRepository(session).any_task(task_id, for_update=True)
            polled.append(await TasksPoll.of(runtime).poll(tasklist.org_id, tasklist.user_id))
            return await real_record_created(session, writer, tasklist, resource, task_id, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(tasks_service.service, "record_created", record_while_a_poll_runs)
            created = await service.client.post(
                "/api/tasks", json={"title": "Raced"}, headers=rep.headers
            )
        assert created.status_code == 201, created.text
        assert polled  # the poll ran while the create held its row
        await stack.poll(service, rep)
        listed = await service.client.get("/api/tasks", headers=rep.headers)
        assert [item["id"] for item in listed.json()["items"]] == [created.json()["id"]]
    assert len(titled(await stack.google_tasks(rep), "Raced")) == 1
    rows = await stack.scalar("SELECT count(*) FROM tasks.tasks WHERE title = 'Raced'")
    assert rows == 1
    assert len(await stack.published("tasks.task.created", created.json()["id"])) == 1
