"""The user's Google connection: when it ends (disconnected, or revoked by Google) the poll stops
for them at once; when they connect again, it resumes with a full read of their lists."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually
from tasks_service.sync import poll_key

pytestmark = pytest.mark.asyncio


async def disconnect(stack: Any, user: ActingUser) -> None:
    async with httpx.AsyncClient(base_url=stack.google.accounts_url) as accounts:
        gone = await accounts.delete("/api/accounts/google", headers=user.headers)
    assert gone.status_code == 204


async def test_disconnecting_drops_the_users_polls_and_marks_a_reconnect_needed(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        await stack.create(service, rep, title="Before leaving")
        await stack.idle(rep)
        # A poll is asked for and not run yet (as one left behind by a stopped process).
        await stack.execute(
            "INSERT INTO tasks.work_requests (key, pending, requested_at)"
            " VALUES (:key, true, now()) ON CONFLICT (key) DO UPDATE SET pending = true",
            key=str(poll_key(rep.principal.org_id, rep.sub)),
        )
        await disconnect(stack, rep)
        await eventually(lambda: stack.pending_poll(rep), until=lambda pending: not pending)
        health = await eventually(
            lambda: stack.health(rep), until=lambda h: h.get("state") == "needs_reconnect"
        )
        assert health["last_error"]["type"] == "urn:pipedesk:problem:google-not-connected"

        listed = len(await stack.calls(rep, "tasks.tasklists.list"))
        await service.run_job("tasks.poll")
        assert len(await stack.calls(rep, "tasks.tasklists.list")) == listed
        assert not await stack.pending_poll(rep)


async def test_reconnecting_resumes_with_a_full_read_of_the_users_lists(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        kept = await stack.create(service, rep, title="Kept")
        await stack.poll(service, rep)
        await disconnect(stack, rep)
        await eventually(
            lambda: stack.health(rep), until=lambda h: h.get("state") == "needs_reconnect"
        )
        # Meanwhile, on the phone.
        await stack.seed(rep, "@default", {"title": "Made while away"})
        await stack.seed(rep, "@default", {"id": kept["google_id"], "status": "completed"})
        listed = len(await stack.calls(rep, "tasks.tasks.list"))

        await stack.connect(rep)  # no job runs: the reconnect itself resumes the poll

        async def mirrored() -> dict[str, str]:
            answer = await service.client.get(
                "/api/tasks", params={"status": "completed"}, headers=rep.headers
            )
            done = {task["title"]: task["status"] for task in answer.json()["items"]}
            answer = await service.client.get("/api/tasks", headers=rep.headers)
            return {task["title"]: task["status"] for task in answer.json()["items"]} | done

        assert await eventually(
            mirrored,
            until=lambda found: found == {"Kept": "completed", "Made while away": "needsAction"},
        )
        reads = (await stack.calls(rep, "tasks.tasks.list"))[listed:]
        assert reads
        assert all("updatedMin" not in call["query"] for call in reads)  # read whole
        await eventually(lambda: stack.health(rep), until=lambda h: h.get("state") == "idle")
