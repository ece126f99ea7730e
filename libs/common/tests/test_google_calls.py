"""The Google call layer through the real google-api-python-client, against the emulator."""

import asyncio
import json
import socketserver
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.oauth2.credentials import Credentials

from google_emulator.app import create_emulator_app
from google_emulator.core import Emulator, Fault
from google_emulator.tasks import user_tasks
from pipedesk_common.errors import Forbidden
from pipedesk_common.google import (
    GoogleApi,
    GoogleReconnectRequired,
    GoogleUser,
    RetryPolicy,
    scopes_for,
)
from pipedesk_common.google.calls import (
    GOOGLE_CALLS,
    GoogleCallError,
    GoogleQuotaExhausted,
    until_quota_day_ends,
)
from pipedesk_common.google.resources import GoogleResource
from pipedesk_testkit.servers import serve_in_thread
from pipedesk_testkit.waiting import eventually

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

    def api(
        self, credentials: EmulatorCredentials, *, timeout_seconds: float = 30.0, **policy: Any
    ) -> GoogleApi:
        async def record(seconds: float) -> None:
            self.waits.append(seconds)

        return GoogleApi(
            "tasks",
            "v1",
            credentials=credentials,
            scopes=scopes_for(["tasks"]),
            root_url=self.url,
            policy=RetryPolicy(**policy),
            timeout_seconds=timeout_seconds,
            sleep=record,
        )

    def calls(self, method: str = METHOD) -> int:
        return sum(1 for request in self.emulator.requests if request.api == method)

    async def settled_calls(self, method: str, at_least: int = 1) -> int:
        """The calls of ``method`` once ``at_least`` are logged (a held answer is logged when it
        finally goes out)."""
        counted: int = await eventually(
            lambda: asyncio.sleep(0, self.calls(method)), until=lambda found: found >= at_least
        )
        return counted

    def lists_titled(self, title: str) -> int:
        mine = user_tasks(self.emulator, EMAIL)
        return sum(1 for task_list in mine.lists.values() if task_list.title == title)


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


INSERT = "tasks.tasklists.insert"


def insert_list(title: str) -> Any:
    return lambda client: client.tasklists().insert(body={"title": title})


@dataclass
class LookUp:
    """A reconcile: the list titled ``title`` if Google has one (what a service would search)."""

    harness: Harness
    title: str
    asked: int = 0

    async def __call__(self) -> Any:
        self.asked += 1
        mine = user_tasks(self.harness.emulator, EMAIL)
        for task_list in mine.lists.values():
            if task_list.title == self.title:
                return {"kind": "tasks#taskList", "id": task_list.id, "title": task_list.title}
        return None


STORED_THEN_FAILED = [
    pytest.param(Fault(503, after_store=True), id="503"),
    pytest.param(Fault(0, after_store=True, drop=True), id="cut-off"),
    pytest.param(Fault(0, after_store=True, latency_seconds=3), id="timeout"),
]


@pytest.mark.parametrize("fault", STORED_THEN_FAILED)
async def test_a_create_google_stored_but_did_not_answer_is_not_repeated_blindly(
    harness: Harness, fault: Fault
) -> None:
    harness.emulator.inject(INSERT, fault)
    api = harness.api(EmulatorCredentials(harness.emulator), timeout_seconds=1)
    with pytest.raises(GoogleQuotaExhausted) as raised:
        await api.call(USER, "tasklists.insert", insert_list("Q3"))
    assert raised.value.status == 503
    assert await harness.settled_calls(INSERT) == 1
    assert harness.lists_titled("Q3") == 1


@pytest.mark.parametrize("fault", STORED_THEN_FAILED)
async def test_a_create_google_stored_but_did_not_answer_is_reconciled(
    harness: Harness, fault: Fault
) -> None:
    harness.emulator.inject(INSERT, fault)
    look_up = LookUp(harness, "Q3")
    api = harness.api(EmulatorCredentials(harness.emulator), timeout_seconds=1)
    found = await api.parsed(
        USER, "tasklists.insert", insert_list("Q3"), TaskList, reconcile=look_up
    )
    assert found.title == "Q3"
    assert look_up.asked == 1
    assert await harness.settled_calls(INSERT) == 1
    assert harness.lists_titled("Q3") == 1


async def test_a_create_that_failed_before_storing_is_made_after_the_look_up(
    harness: Harness,
) -> None:
    harness.emulator.inject(INSERT, Fault(503))  # refused before the store
    look_up = LookUp(harness, "Q4")
    created = await harness.api(EmulatorCredentials(harness.emulator)).parsed(
        USER, "tasklists.insert", insert_list("Q4"), TaskList, reconcile=look_up
    )
    assert created.title == "Q4"
    assert look_up.asked == 1
    assert harness.calls(INSERT) == 2
    assert harness.lists_titled("Q4") == 1


@pytest.mark.parametrize(
    "fault", [Fault(429, retry_after=2), Fault(403, reason="userRateLimitExceeded")]
)
async def test_a_create_refused_before_processing_is_retried_without_a_look_up(
    harness: Harness, fault: Fault
) -> None:
    harness.emulator.inject(INSERT, fault)
    look_up = LookUp(harness, "Q5")
    await harness.api(EmulatorCredentials(harness.emulator)).call(
        USER, "tasklists.insert", insert_list("Q5"), reconcile=look_up
    )
    assert look_up.asked == 0
    assert harness.calls(INSERT) == 2
    assert harness.lists_titled("Q5") == 1


async def test_a_create_that_never_reached_google_is_retried(harness: Harness) -> None:
    from pipedesk_testkit.servers import free_port

    unreachable = Harness(harness.emulator, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(GoogleQuotaExhausted):
        await unreachable.api(EmulatorCredentials(harness.emulator), max_attempts=3).call(
            USER, "tasklists.insert", insert_list("Q6")
        )
    assert len(unreachable.waits) == 2


@pytest.mark.parametrize("fault", STORED_THEN_FAILED)
async def test_a_call_that_may_run_twice_is_retried_after_an_ambiguous_failure(
    harness: Harness, fault: Fault
) -> None:
    harness.emulator.inject(METHOD, fault)
    api = harness.api(EmulatorCredentials(harness.emulator), timeout_seconds=1)
    answer = await api.call(USER, "tasklists.list", list_lists)
    assert answer["kind"] == "tasks#taskLists"
    assert await harness.settled_calls(METHOD, 2) == 2


async def _spent_quota(harness: Harness, reason: str) -> GoogleQuotaExhausted:
    harness.emulator.inject(METHOD, Fault(403, reason=reason))
    with pytest.raises(GoogleQuotaExhausted) as raised:
        await harness.api(EmulatorCredentials(harness.emulator)).call(
            USER, "tasklists.list", list_lists
        )
    assert harness.calls() == 1
    assert raised.value.status == 503
    assert raised.value.rate_limited
    return raised.value


async def test_a_spent_quota_is_not_retried_and_is_left_alone_for_an_hour(
    harness: Harness,
) -> None:
    spent = await _spent_quota(harness, "quotaExceeded")
    assert int(spent.headers["Retry-After"]) == 3600


async def test_a_spent_daily_limit_is_left_alone_until_googles_day_starts_again(
    harness: Harness,
) -> None:
    spent = await _spent_quota(harness, "dailyLimitExceeded")
    seconds = int(spent.headers["Retry-After"])
    assert 1 <= seconds <= 25 * 3600
    # Google's day starts at midnight Pacific time, whatever the hour here.
    resumes = (datetime.now(UTC) + timedelta(seconds=seconds)).astimezone(
        ZoneInfo("America/Los_Angeles")
    )
    since_midnight = resumes - resumes.replace(hour=0, minute=0, second=0, microsecond=0)
    assert min(since_midnight, timedelta(days=1) - since_midnight) <= timedelta(seconds=5)


@pytest.mark.parametrize(
    ("now", "left"),
    [
        # 00:30 PDT on the day clocks go back: 24 h 30 min of real time until midnight PST.
        (datetime(2026, 11, 1, 7, 30, tzinfo=UTC), timedelta(hours=24, minutes=30)),
        # 00:30 PST on the day clocks go forward: 22 h 30 min until midnight PDT.
        (datetime(2026, 3, 8, 8, 30, tzinfo=UTC), timedelta(hours=22, minutes=30)),
        # 23:59:30 PST: half a minute.
        (datetime(2026, 12, 8, 7, 59, 30, tzinfo=UTC), timedelta(seconds=30)),
    ],
)
async def test_googles_quota_day_ends_at_midnight_pacific_across_clock_changes(
    now: datetime, left: timedelta
) -> None:
    assert until_quota_day_ends(now) == left


async def test_a_grant_without_the_products_scope_asks_to_reconnect_for_it(
    harness: Harness,
) -> None:
    harness.emulator.inject(METHOD, Fault(403, reason="insufficientPermissions"))
    with pytest.raises(GoogleReconnectRequired) as raised:
        await harness.api(EmulatorCredentials(harness.emulator)).call(
            USER, "tasklists.list", list_lists
        )
    assert raised.value.status == 409
    assert raised.value.detail is not None
    assert "Reconnect Google for Google Tasks" in raised.value.detail
    assert raised.value.errors is not None
    assert raised.value.errors[0].code == "insufficientPermissions"


async def test_every_method_the_services_call_is_classified() -> None:
    from googleapiclient.discovery_cache import get_static_doc

    from pipedesk_common.google.idempotency import repeatable

    calendar = json.loads(get_static_doc("calendar", "v3"))
    tasks = json.loads(get_static_doc("tasks", "v1"))
    assert not repeatable("tasks", tasks, "tasks.insert")
    assert not repeatable("tasks", tasks, "tasklists.insert")
    assert not repeatable("calendar", calendar, "events.watch")
    for method in ("tasks.patch", "tasks.delete", "tasks.list", "tasks.move", "tasks.clear"):
        assert repeatable("tasks", tasks, method), method
    for method in ("events.insert", "events.patch", "freebusy.query", "channels.stop"):
        assert repeatable("calendar", calendar, method), method
    with pytest.raises(ValueError, match="no method"):
        repeatable("tasks", tasks, "tasks.send")


class HangingUp(socketserver.ThreadingTCPServer):
    """Reads each request, then closes the connection without a word (Google's answer lost)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), socketserver.BaseRequestHandler)
        self.received = 0

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.recv(65536)
        self.received += 1


async def test_a_request_whose_connection_closed_unanswered_is_sent_once(
    harness: Harness,
) -> None:
    # httplib2 on its own sends such a request again on a fresh connection: never a create.
    with HangingUp() as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            silent = Harness(harness.emulator, f"http://127.0.0.1:{server.server_address[1]}")
            with pytest.raises(GoogleQuotaExhausted):
                await silent.api(EmulatorCredentials(harness.emulator)).call(
                    USER, "tasklists.insert", insert_list("Q7")
                )
        finally:
            server.shutdown()
    assert server.received == 1
