"""The credentials provider other services use: tokens from the accounts service, refreshed
through the emulator, used by the real Google client."""

from datetime import UTC, datetime, timedelta

import pytest

from pipedesk_common.auth import Role
from pipedesk_common.clock import ManualClock
from pipedesk_common.google import (
    GoogleApi,
    GoogleNotConnected,
    GoogleUser,
    scopes_for,
)
from pipedesk_common.google.accounts import AccountsUnavailable
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import free_port

pytestmark = pytest.mark.asyncio

TASKS = list(scopes_for(["tasks"]))


def google_user(user: object) -> GoogleUser:
    principal = user.principal  # type: ignore[attr-defined]
    return GoogleUser(org_id=principal.org_id, user_id=principal.sub, email=principal.email)


async def test_a_connected_user_calls_google_with_tokens_from_the_accounts_service(
    google: GoogleStack, users: Users
) -> None:
    rep = users.make(Role.REP)
    status = await google.connect(rep, ["tasks"])
    assert status["status"] == "connected"
    assert status["products"]["tasks"]["granted"] is True
    assert status["products"]["calendar"]["granted"] is False
    async with google.credentials("tasks") as provider:
        tasks = GoogleApi(
            "tasks", "v1", credentials=provider, scopes=TASKS, root_url=google.root_url
        )
        lists = await tasks.call(google_user(rep), "tasklists.list", lambda c: c.tasklists().list())
        again = await tasks.call(google_user(rep), "tasklists.list", lambda c: c.tasklists().list())
        assert lists["items"][0]["title"] == "My Tasks"
        assert again == lists
        assert provider.fetches == 1  # the second call used the cached token
    calls = await google.requests(user=rep.principal.email, api="tasks.tasklists.list")
    assert [call["status"] for call in calls] == [200, 200]


async def test_refreshed_forces_a_new_token_from_google(google: GoogleStack, users: Users) -> None:
    rep = users.make(Role.REP)
    await google.connect(rep, ["tasks"])
    async with google.credentials("tasks") as provider:
        first = await provider.credentials(google_user(rep), TASKS)
        cached = await provider.credentials(google_user(rep), TASKS)
        renewed = await provider.refreshed(google_user(rep), TASKS)
    assert cached.token == first.token
    assert renewed.token != first.token
    assert provider.fetches == 2


async def test_a_token_google_rejects_is_refreshed_once_and_the_call_succeeds(
    google: GoogleStack, users: Users
) -> None:
    rep = users.make(Role.REP)
    await google.connect(rep, ["tasks"])
    async with google.credentials("tasks") as provider:
        stale = await provider.credentials(google_user(rep), TASKS)
        await google.revoke(stale.token)
        tasks = GoogleApi(
            "tasks", "v1", credentials=provider, scopes=TASKS, root_url=google.root_url
        )
        lists = await tasks.call(google_user(rep), "tasklists.list", lambda c: c.tasklists().list())
    assert lists["items"][0]["title"] == "My Tasks"
    statuses = [
        c["status"]
        for c in await google.requests(user=rep.principal.email, api="tasks.tasklists.list")
    ]
    assert statuses == [200]  # the 401 is logged without a user: the token was no longer valid


async def test_the_provider_caches_until_shortly_before_expiry(
    google: GoogleStack, users: Users
) -> None:
    rep = users.make(Role.REP)
    await google.connect(rep, ["tasks"])
    clock = ManualClock(datetime.now(UTC))
    async with google.credentials("tasks", clock=clock) as provider:
        await provider.credentials(google_user(rep), TASKS)
        clock.advance(timedelta(minutes=30))
        await provider.credentials(google_user(rep), TASKS)
        assert provider.fetches == 1
        clock.advance(timedelta(minutes=26))  # within 5 minutes of the hour's expiry
        await provider.credentials(google_user(rep), TASKS)
        assert provider.fetches == 2


async def test_a_user_who_never_connected_gets_a_connect_problem(
    google: GoogleStack, users: Users
) -> None:
    rep = users.make(Role.REP)
    async with google.credentials("tasks") as provider:
        with pytest.raises(GoogleNotConnected) as raised:
            await provider.credentials(google_user(rep), TASKS)
    assert raised.value.errors is not None
    assert raised.value.errors[0].message == "connect Google for: tasks"


async def test_an_unreachable_accounts_service_is_a_retryable_problem(
    google: GoogleStack, users: Users
) -> None:
    rep = users.make(Role.REP)
    async with google.credentials("tasks") as provider:
        provider._url = f"http://127.0.0.1:{free_port()}/internal/google/token"
        with pytest.raises(AccountsUnavailable) as raised:
            await provider.credentials(google_user(rep), TASKS)
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "5"}
