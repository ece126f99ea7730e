"""Google's long-lived refusals as problems the caller and the sync health can act on: a spent
quota answers 503 with a Retry-After and backs the poll off; a grant that does not cover Google
Tasks asks to reconnect for it, and the poll waits for that reconnect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_common.clock import ManualClock
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio

PROBLEM = "urn:pipedesk:problem:"


async def refuse(stack: Any, user: ActingUser, method: str, reason: str) -> None:
    fault = {"api_method": method, "status": 403, "reason": reason, "user": user.principal.email}
    await stack.google.admin("POST", "/faults", json=fault)


async def health_in(stack: Any, user: ActingUser, state: str) -> dict[str, Any]:
    found: dict[str, Any] = await eventually(
        lambda: stack.health(user), until=lambda health: health.get("state") == state
    )
    return found


@pytest.mark.parametrize("reason", ["quotaExceeded", "dailyLimitExceeded"])
async def test_a_spent_quota_answers_503_with_a_retry_after_and_is_not_retried(
    stack: Any, users: Users, reason: str
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        await stack.create(service, rep, title="Warm-up")
        await refuse(stack, rep, "tasks.tasks.insert", reason)
        answer = await service.client.post(
            "/api/tasks", json={"title": "Spent"}, headers=rep.headers
        )
    assert answer.status_code == 503, answer.text
    assert answer.json()["type"] == PROBLEM + "google-unavailable"
    assert reason in answer.json()["detail"]
    assert 1 <= int(answer.headers["Retry-After"]) <= 25 * 3600
    # The refused call is logged before Google knows whose it is: a retry would be a second.
    assert len(await stack.calls(rep, "tasks.tasks.insert")) == 1
    assert [task["title"] for task in await stack.google_tasks(rep)] == ["Warm-up"]


async def test_rate_limits_past_the_retries_answer_503_with_googles_retry_after(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    fault = {"api_method": "tasks.tasks.insert", "status": 429, "retry_after": 1, "count": 5}
    async with stack.start() as service:
        await stack.create(service, rep, title="Warm-up")
        await stack.google.admin("POST", "/faults", json={**fault, "user": rep.principal.email})
        try:
            answer = await service.client.post(
                "/api/tasks", json={"title": "Limited"}, headers=rep.headers
            )
        finally:
            await stack.google.admin("DELETE", "/faults")
    assert answer.status_code == 503, answer.text
    assert answer.json()["type"] == PROBLEM + "google-unavailable"
    assert answer.headers["Retry-After"] == "1"
    assert [task["title"] for task in await stack.google_tasks(rep)] == ["Warm-up"]


async def test_a_spent_quota_backs_the_poll_off_for_as_long_as_google_asks(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    clock = ManualClock(datetime.now(UTC))
    async with stack.start(clock) as service:
        await stack.create(service, rep, title="Before")
        await stack.poll(service, rep)
        await refuse(stack, rep, "tasks.tasks.list", "quotaExceeded")
        await service.run_job("tasks.poll")
        health = await health_in(stack, rep, "backing_off")
    assert health["consecutive_failures"] == 1
    assert "quotaExceeded" in health["last_error"]["message"]
    # Left alone for the hour a spent quota is given, not the minute of a first failure.
    waits = datetime.fromisoformat(health["next_attempt_at"]) - clock.now()
    assert waits >= timedelta(minutes=59)


async def test_a_grant_without_tasks_asks_to_reconnect_for_google_tasks(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        await stack.create(service, rep, title="Before")
        await refuse(stack, rep, "tasks.tasks.insert", "insufficientPermissions")
        answer = await service.client.post(
            "/api/tasks", json={"title": "Refused"}, headers=rep.headers
        )
        assert answer.status_code == 409, answer.text
        problem = answer.json()
        assert problem["type"] == PROBLEM + "google-reconnect-required"
        assert "Reconnect Google for Google Tasks" in problem["detail"]

        await stack.poll(service, rep)
        await refuse(stack, rep, "tasks.tasks.list", "insufficientPermissions")
        await service.run_job("tasks.poll")
        health = await health_in(stack, rep, "needs_reconnect")
    assert health["last_error"]["type"] == PROBLEM + "google-reconnect-required"
    assert "Google Tasks" in health["last_error"]["message"]
    assert health["next_attempt_at"] is None
