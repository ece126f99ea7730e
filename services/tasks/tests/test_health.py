"""Sync health of the poll, as the accounts service answers it: backing off while Google rate
limits, failing with the problem after persistent server errors, needing a reconnect after
Google refuses the grant, and idle again once it recovers; never a user in the gauges."""

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
LATER = timedelta(hours=2)  # past any next attempt after a few failures


async def health_in(stack: Any, user: ActingUser, state: str, **expected: Any) -> dict[str, Any]:
    """The user's tasks health once it is ``state`` (with ``expected`` fields)."""

    def reached(health: dict[str, Any]) -> bool:
        fields = all(health.get(name) == value for name, value in expected.items())
        return health.get("state") == state and fields

    found: dict[str, Any] = await eventually(lambda: stack.health(user), until=reached)
    return found


async def started(stack: Any, service: Any, user: ActingUser) -> None:
    """A connected user whose first task is mirrored and whose poll succeeded."""
    await stack.create(service, user, title="Before")
    await stack.poll(service, user)
    await health_in(stack, user, "idle", last_error=None)


async def faults(stack: Any, user: ActingUser, status: int, count: int) -> None:
    """Google answers ``status`` to the user's next ``count`` task listings."""
    fault = {"api_method": "tasks.tasks.list", "status": status, "count": count}
    await stack.google.admin("POST", "/faults", json={**fault, "user": user.principal.email})


async def test_rate_limiting_backs_off_and_a_recovery_is_idle(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    clock = ManualClock(datetime.now(UTC))
    async with stack.start(clock) as service:
        await started(stack, service, rep)
        await faults(stack, rep, 429, 5)  # every attempt of one call
        try:
            await service.run_job("tasks.poll")
        finally:
            await stack.google.admin("DELETE", "/faults")
        backing = await health_in(stack, rep, "backing_off", consecutive_failures=1)
        assert backing["last_error"]["type"] == PROBLEM + "google-unavailable"
        assert "429" in backing["last_error"]["message"]
        assert datetime.fromisoformat(backing["next_attempt_at"]) > clock.now()
        assert backing["last_success_at"] is not None

        # Until the next attempt is due, the periodic poll leaves the user alone.
        listed = len(await stack.calls(rep, "tasks.tasks.list"))
        await service.run_job("tasks.poll")
        assert len(await stack.calls(rep, "tasks.tasks.list")) == listed

        await stack.seed(rep, "@default", {"title": "While backing off"})
        clock.advance(LATER)
        await service.run_job("tasks.poll")
        await health_in(stack, rep, "idle", last_error=None, consecutive_failures=0)
        mirrored = await stack.scalar(
            "SELECT count(*) FROM tasks.tasks WHERE user_id = :user AND title = :title",
            user=rep.sub,
            title="While backing off",
        )
        assert mirrored == 1


async def test_persistent_server_errors_are_failing_with_the_problem_and_counted_by_state(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    clock = ManualClock(datetime.now(UTC))
    async with stack.start(clock, health_metrics_seconds=0.2) as service:
        await started(stack, service, rep)
        await faults(stack, rep, 500, 1000)
        try:
            for failures, state in ((1, "backing_off"), (2, "backing_off"), (3, "failing")):
                await service.run_job("tasks.poll")
                health = await health_in(stack, rep, state, consecutive_failures=failures)
                clock.advance(LATER)
            assert health["last_error"]["type"] == PROBLEM + "google-unavailable"
            assert "500" in health["last_error"]["message"]

            def failing(metrics: str) -> list[str]:
                return [
                    line
                    for line in metrics.splitlines()
                    if line.startswith("pipedesk_google_sync_accounts{")
                    and 'state="failing"' in line
                    and 'product="tasks"' in line
                    and float(line.rsplit(" ", 1)[1]) >= 1
                ]

            async def metrics() -> str:
                return (await service.client.get("/metrics")).text

            text = await eventually(metrics, until=lambda text: bool(failing(text)))
            gauges = [
                line for line in text.splitlines() if "pipedesk_google_sync_accounts{" in line
            ]
            assert all(rep.sub not in line and "user" not in line for line in gauges)
        finally:
            await stack.google.admin("DELETE", "/faults")
        await service.run_job("tasks.poll")
        await health_in(stack, rep, "idle", last_error=None, consecutive_failures=0)


async def test_a_revoked_grant_needs_a_reconnect_and_reconnecting_makes_it_idle(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as service:
        await started(stack, service, rep)
        revoked = await stack.google.admin("POST", f"/users/{rep.principal.email}/revoke")
        assert revoked.json()["revoked"] >= 1  # removed from their Google account
        await service.run_job("tasks.poll")
        needs = await health_in(stack, rep, "needs_reconnect", next_attempt_at=None)
        assert needs["last_error"]["type"] == PROBLEM + "google-reconnect-required"

        asked = len(await stack.google.requests(user=rep.principal.email))
        await service.run_job("tasks.poll")
        assert len(await stack.google.requests(user=rep.principal.email)) == asked

        await stack.connect(rep)
        await health_in(stack, rep, "idle", last_error=None, consecutive_failures=0)
