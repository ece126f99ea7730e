"""The Google call layer through the real google-api-python-client, against the emulator."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from google_emulator.app import create_emulator_app
from google_emulator.core import Emulator, Fault
from pipedesk_common.errors import Forbidden
from pipedesk_common.google import GoogleApi, GoogleUser, RetryPolicy, scopes_for
from pipedesk_common.google.calls import GOOGLE_CALLS, GoogleCallError, GoogleQuotaExhausted
from pipedesk_common.google.resources import GoogleResource
from pipedesk_testkit.servers import serve_in_thread

pytestmark = pytest.mark.asyncio

USER = GoogleUser(org_id="org-g", user_id="u-g")
EMAIL = "ada@example.com"
METHOD = "tasks.tasklists.list"


@dataclass
class EmulatorCredentials:
    """Tokens minted by the emulator for one test user (the accounts service does this for real)."""

    emulator: Emulator
    refreshes: int = 0

    async def credentials(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        return Credentials(self.emulator.issue_access_token(EMAIL, scopes).token)  # type: ignore[no-untyped-call]

    async def refreshed(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        self.refreshes += 1
        return await self.credentials(user, scopes)


@dataclass
class Harness:
    emulator: Emulator
    url: str
    waits: list[float] = field(default_factory=list)

    def api(self, credentials: EmulatorCredentials, **policy: Any) -> GoogleApi:
        async def record(seconds: float) -> None:
            self.waits.append(seconds)

        return GoogleApi(
            "tasks",
            "v1",
            credentials=credentials,
            scopes=scopes_for(["tasks"]),
            root_url=self.url,
            policy=RetryPolicy(**policy),
            sleep=record,
        )

    def calls(self) -> int:
        return sum(1 for request in self.emulator.requests if request.api == METHOD)


@pytest.fixture
def harness() -> Iterator[Harness]:
    app = create_emulator_app()
    with serve_in_thread(app) as url:
        yield Harness(app.state.emulator, url)
    assert app.state.emulator.fidelity_violations == []


def list_lists(client: Any) -> Any:
    return client.tasklists().list()


async def test_429_then_503_then_success_after_three_calls_honouring_retry_after(
    harness: Harness,
) -> None:
    harness.emulator.inject(METHOD, Fault(429, retry_after=7))
    harness.emulator.inject(METHOD, Fault(503))
    result = await harness.api(EmulatorCredentials(harness.emulator)).call(
        USER, "tasklists.list", list_lists
    )
    assert result["kind"] == "tasks#taskLists"
    assert harness.calls() == 3
    assert harness.waits[0] >= 7


async def test_rate_limit_403_twice_then_success(harness: Harness) -> None:
    for _ in range(2):
        harness.emulator.inject(METHOD, Fault(403, reason="rateLimitExceeded"))
    await harness.api(EmulatorCredentials(harness.emulator)).call(
        USER, "tasklists.list", list_lists
    )
    assert harness.calls() == 3


@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [(403, "forbidden", Forbidden), (400, "invalid", GoogleCallError)],
)
async def test_other_errors_fail_at_once(
    harness: Harness, status: int, reason: str, error: type[Exception]
) -> None:
    harness.emulator.inject(METHOD, Fault(status, reason=reason))
    with pytest.raises(error) as raised:
        await harness.api(EmulatorCredentials(harness.emulator)).call(
            USER, "tasklists.list", list_lists
        )
    assert harness.calls() == 1
    assert reason in str(raised.value.errors)  # type: ignore[attr-defined]


@dataclass
class RevokedFirst(EmulatorCredentials):
    """Hands out a token Google has since revoked; only a refresh gets a good one."""

    async def credentials(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        stale = self.emulator.issue_access_token(EMAIL, scopes)
        stale.revoked = True
        return Credentials(stale.token)  # type: ignore[no-untyped-call]

    async def refreshed(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        self.refreshes += 1
        return Credentials(self.emulator.issue_access_token(EMAIL, scopes).token)  # type: ignore[no-untyped-call]


async def test_401_gets_one_refresh_and_one_retry(harness: Harness) -> None:
    credentials = RevokedFirst(harness.emulator)
    await harness.api(credentials).call(USER, "tasklists.list", list_lists)
    assert credentials.refreshes == 1
    assert harness.calls() == 2


async def test_persistent_500_gives_up_at_the_cap_as_a_503_problem(harness: Harness) -> None:
    harness.emulator.inject(METHOD, Fault(500, remaining=100))
    before = GOOGLE_CALLS.labels("tasks", "tasklists.list", "500")._value.get()
    with pytest.raises(GoogleQuotaExhausted) as raised:
        await harness.api(EmulatorCredentials(harness.emulator), max_attempts=4).call(
            USER, "tasklists.list", list_lists
        )
    assert raised.value.status == 503
    assert int(raised.value.headers["Retry-After"]) >= 1
    assert harness.calls() == 4
    assert GOOGLE_CALLS.labels("tasks", "tasklists.list", "500")._value.get() - before == 4
    assert len(harness.waits) == 3


async def test_an_unreachable_google_is_retried_then_a_503_problem(harness: Harness) -> None:
    from pipedesk_testkit.servers import free_port

    unreachable = Harness(harness.emulator, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(GoogleQuotaExhausted) as raised:
        await unreachable.api(EmulatorCredentials(harness.emulator), max_attempts=3).call(
            USER, "tasklists.list", list_lists
        )
    assert raised.value.status == 503
    assert len(unreachable.waits) == 2


class Unexpected(GoogleResource):
    """A model this answer does not fit: Google's task lists carry no ``colour``."""

    id: str
    colour: int


class TaskList(GoogleResource):
    id: str
    title: str


async def test_an_answer_that_does_not_fit_its_model_is_refused_at_the_edge(
    harness: Harness,
) -> None:
    api = harness.api(EmulatorCredentials(harness.emulator))
    lists = await api.list_all(
        USER, METHOD, lambda client, token: client.tasklists().list(pageToken=token), TaskList
    )
    assert lists
    assert all(task_list.raw["id"] == task_list.id for task_list in lists)
    with pytest.raises(GoogleCallError) as refused:
        await api.page(USER, METHOD, list_lists, Unexpected)
    assert refused.value.status == 502
    assert refused.value.errors is not None
    assert refused.value.errors[0].code == "unreadable"
    assert "colour" in (refused.value.detail or "")
    # A sync reads on past the items it cannot read, and names them.
    tolerant = await api.page(USER, METHOD, list_lists, Unexpected, skip_unreadable=True)
    assert tolerant.items == []
    assert [item.id for item in tolerant.skipped] == [task_list.id for task_list in lists]
    assert all("colour" in item.reason for item in tolerant.skipped)


async def test_what_google_no_longer_has_counts_as_deleted(harness: Harness) -> None:
    api = harness.api(EmulatorCredentials(harness.emulator))
    await api.ensure_gone(
        USER, "tasks.tasklists.delete", lambda client: client.tasklists().delete(tasklist="gone")
    )
    harness.emulator.inject("tasks.tasklists.delete", Fault(410))
    await api.ensure_gone(
        USER, "tasks.tasklists.delete", lambda client: client.tasklists().delete(tasklist="gone")
    )
    harness.emulator.inject("tasks.tasklists.delete", Fault(400))
    with pytest.raises(GoogleCallError):
        await api.ensure_gone(
            USER,
            "tasks.tasklists.delete",
            lambda client: client.tasklists().delete(tasklist="gone"),
        )
