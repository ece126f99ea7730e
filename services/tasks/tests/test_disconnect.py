"""A disconnected account's tasks follow the org's ``on_disconnect`` rule: kept as last seen (the
default), or removed from PipeDesk, each copy announced ``tasks.task.deleted`` with its timeline
status ``removed`` so the timeline drops it; other users' and another org's tasks stay."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio
PATH = "/api/tasks/settings"


async def disconnect_tasks(stack: Any, user: ActingUser) -> None:
    async with httpx.AsyncClient(base_url=stack.google.accounts_url, timeout=30) as accounts:
        gone = await accounts.delete("/api/accounts/google/products/tasks", headers=user.headers)
    assert gone.status_code == 204, gone.text


async def held(stack: Any, user: ActingUser) -> int:
    count: int = await stack.scalar(
        "SELECT count(*) FROM tasks.tasks WHERE user_id = :user", user=user.sub
    )
    return count


async def test_only_admins_set_the_disconnect_rule_of_their_own_org(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    admin = users.make(Role.ADMIN)
    elsewhere_admin = users.other_org().make(Role.ADMIN)
    async with stack.start() as service:
        default = await service.client.get(PATH, headers=manager.headers)
        assert default.status_code == 200, default.text
        assert default.json()["on_disconnect"] == "keep_metadata"
        assert (await service.client.get(PATH, headers=rep.headers)).status_code == 403
        refused = await service.client.put(
            PATH, json={"on_disconnect": "remove"}, headers=manager.headers
        )
        assert refused.status_code == 403
        for bad in ({"on_disconnect": "wipe"}, {"on_disconnect": None}):
            answer = await service.client.put(PATH, json=bad, headers=admin.headers)
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"][0]["field"] == "body.on_disconnect"
        assert (
            await service.client.put(PATH, json={"keep": 1}, headers=admin.headers)
        ).status_code == 422
        answer = await service.client.put(
            PATH, json={"on_disconnect": "remove"}, headers=admin.headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["on_disconnect"] == "remove"
        assert (await service.client.get(PATH, headers=admin.headers)).json()[
            "on_disconnect"
        ] == "remove"
        theirs = await service.client.get(PATH, headers=elsewhere_admin.headers)
        assert theirs.json()["on_disconnect"] == "keep_metadata"


async def test_a_disconnected_accounts_tasks_are_kept_or_removed_as_the_org_says(
    stack: Any, users: Users
) -> None:
    keeper = users.make(Role.REP, teams=["t1"])
    remover = users.make(Role.REP, teams=["t1"])
    admin = users.make(Role.ADMIN)
    elsewhere_users = users.other_org()
    elsewhere = elsewhere_users.make(Role.REP, teams=["t1"])
    for user in (keeper, remover, elsewhere):
        await stack.connect(user)
    async with stack.start() as service:
        kept = await stack.create(service, keeper, title="Kept")
        removed = [await stack.create(service, remover, title=t) for t in ("Call", "Quote")]
        theirs = await stack.create(service, elsewhere, title="Theirs")

        # The org's default rule: the tasks stay, as last seen, no longer polled.
        await disconnect_tasks(stack, keeper)
        await eventually(
            lambda: stack.health(keeper), until=lambda h: h.get("state") == "needs_reconnect"
        )
        assert await held(stack, keeper) == 1
        assert await stack.published("tasks.task.deleted", kept["id"]) == []

        # The org removes a disconnected account's tasks.
        answer = await service.client.put(
            PATH, json={"on_disconnect": "remove"}, headers=admin.headers
        )
        assert answer.status_code == 200, answer.text
        await disconnect_tasks(stack, remover)
        await eventually(lambda: held(stack, remover), until=lambda count: count == 0)
        for task in removed:
            [announced] = await stack.published("tasks.task.deleted", task["id"])
            assert announced["timeline"]["status"] == "removed"
            assert announced["timeline"]["summary"] is None
        assert (
            await stack.scalar(
                "SELECT count(*) FROM tasks.task_links l WHERE NOT EXISTS "
                "(SELECT 1 FROM tasks.tasks WHERE id = l.task_id)"
            )
            == 0
        )
        # Nobody else's tasks moved.
        assert await held(stack, keeper) == 1
        assert await held(stack, elsewhere) == 1
        assert await stack.published("tasks.task.deleted", theirs["id"]) == []
