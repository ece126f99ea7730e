"""The pytest plugin every service's tests use (enabled with ``-p pipedesk_testkit.plugin``).

At session start it provides PostgreSQL, RabbitMQ and Redis like ``make run`` does
(``pipedesk_common.preflight.provide``): servers that answer are used, the others are started in
Docker containers for the session, or the run stops with one line per server.

Fixtures: ``database_url`` (a migrated database for this run), ``identity`` (a real dev identity
provider over HTTP, with its signing keys), ``service_env`` (the environment a service under test
reads), ``users`` (principals and tokens per role, each test in an org of its own), ``google``
(the Google emulator and the accounts service, with helpers to connect test users), ``crm_url``
(a CRM on a socket, per module) and ``world`` (everything a Google-facing service under test runs
beside: see ``pipedesk_testkit.service``); ``quiet_broker`` empties the run's queues before a test
that waits for a chain of events.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from dev_identity.keystore import KeyStore, TokenMinter
from dev_identity.server import create_identity_app
from pipedesk_common.clock import Clock
from pipedesk_common.containers import DockerContainers
from pipedesk_common.preflight import REDIS, TEST_SERVERS, provide
from pipedesk_common.settings import (
    DEFAULT_AMQP_URL,
    DEFAULT_DATABASE_URL,
    BaseServiceSettings,
)
from pipedesk_testkit.clients import app_client
from pipedesk_testkit.database import (
    create_run_database,
    drop_database,
    published_event_violations,
)
from pipedesk_testkit.google import GoogleStack, run_google_stack
from pipedesk_testkit.identities import Identity, Users
from pipedesk_testkit.namespace import (
    broker_namespace,
    delete_namespace,
    purge_queues,
    sub_prefix,
)
from pipedesk_testkit.servers import serve_in_thread
from pipedesk_testkit.service import World

QUEUE_EXPIRY_MS = 900_000  # what the ledger missed (a killed process) goes 15 minutes after use


def pytest_configure(config: pytest.Config) -> None:
    # Nothing may probe a cloud metadata address from a test.
    os.environ.setdefault("NO_GCE_CHECK", "True")


_SERVERS = pytest.StashKey[ExitStack]()


def pytest_sessionstart(session: pytest.Session) -> None:
    stack = ExitStack()
    containers = DockerContainers.from_environment(os.environ)
    provision = provide(TEST_SERVERS, os.environ, containers, stack)
    if provision.problems:
        pytest.exit(" | ".join(problem.line() for problem in provision.problems), returncode=3)
    session.config.stash[_SERVERS] = stack
    settings = stack.enter_context(pytest.MonkeyPatch.context())
    for name, url in provision.environment().items():  # what the suite and its processes read
        settings.setenv(name, url)
    if (line := provision.line()) is not None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failure's report, even when CPython 3.11's parser trips while pytest reads the failing
    source for it: ``ast.parse`` racing a compile in one of the servers' threads raises
    ``SystemError: AST constructor recursion depth mismatch`` (CPython gh-106905), which would end
    the whole session. The report is then made again with Python's own traceback, which reads
    no source through the parser."""
    try:
        return (yield)
    except SystemError:
        style = item.config.option.tbstyle
        item.config.option.tbstyle = "native"
        try:
            return pytest.TestReport.from_item_and_call(item, call)
        finally:
            item.config.option.tbstyle = style


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown
def pytest_sessionfinish(session: pytest.Session) -> None:
    stack = session.config.stash.get(_SERVERS, None)
    if stack is not None:
        stack.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Where this run's Redis answers (``REDIS_URL``, a container's if one was started)."""
    return REDIS.url(os.environ)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """This run's database. At its end, every event any service published during the run (all
    of them sit in the outboxes) is checked against its contract."""
    url = asyncio.run(create_run_database(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)))
    yield url
    try:
        violations = asyncio.run(published_event_violations(url))
    finally:
        asyncio.run(drop_database(url))
    if violations:
        pytest.fail("published events break their contracts:\n" + "\n".join(violations[:50]))


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    key_dir = tmp_path_factory.mktemp("keys")
    store = KeyStore(key_dir)
    with serve_in_thread(create_identity_app(store)) as url:
        yield Identity(url=url, key_dir=key_dir, minter=TokenMinter(store.identity_key()))


@pytest.fixture(scope="session")
def queue_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file every process of this run lists its declared queues in (``BROKER_QUEUE_LEDGER``)."""
    return tmp_path_factory.mktemp("broker") / "queues"


@pytest.fixture(scope="session")
def broker_prefix(queue_ledger: Path) -> Iterator[str]:
    """Exchanges and queues of this run carry this prefix. At the end of the run its queues (from
    the ledger) and exchanges are deleted; queues the ledger missed (a process killed mid-way)
    expire 15 minutes after their last use."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    yield prefix
    asyncio.run(delete_namespace(prefix, queue_ledger))


@pytest_asyncio.fixture
async def own_broker_prefix(broker_prefix: str, queue_ledger: Path) -> AsyncIterator[str]:
    """A broker namespace of the test's own, inside the run's (``pipedesk_testkit.namespace``):
    services started with it (``BROKER_PREFIX=…``) meet none of the events earlier tests left
    queued in the run's queues, so a test that waits for its events never works through a backlog
    first."""
    async with broker_namespace(broker_prefix, queue_ledger) as prefix:
        yield prefix


@pytest_asyncio.fixture
async def quiet_broker(broker_prefix: str, queue_ledger: Path) -> None:
    """The run's queues emptied before the test: services it starts in the run's namespace (beside
    the session's accounts service) meet no backlog of the events earlier tests published, so a
    test that waits for a chain of events never works through thousands of others first."""
    await purge_queues(broker_prefix, queue_ledger)


@pytest.fixture(scope="module")
def module_broker_prefix(broker_prefix: str, queue_ledger: Path) -> Iterator[str]:
    """``own_broker_prefix`` shared by a module's tests, for services a module fixture starts."""
    prefix = sub_prefix(broker_prefix)
    yield prefix
    asyncio.run(delete_namespace(prefix, queue_ledger))


@pytest.fixture(scope="session")
def service_env(
    database_url: str, identity: Identity, broker_prefix: str, queue_ledger: Path
) -> dict[str, str]:
    """Settings for a service under test, as environment variables (also usable as kwargs)."""
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "AMQP_URL": os.environ.get("AMQP_URL", DEFAULT_AMQP_URL),
        "AUTH_JWKS_URL": identity.jwks_url,
        "SERVICE_JWKS_URL": identity.service_jwks_url,
        "DEV_KEY_DIR": str(identity.key_dir),
        "LOG_LEVEL": "WARNING",
        "BROKER_PREFIX": broker_prefix,
        "BROKER_QUEUE_EXPIRES_MS": str(QUEUE_EXPIRY_MS),
        "BROKER_QUEUE_LEDGER": str(queue_ledger),
        "OUTBOX_POLL_SECONDS": "0.2",
        "CONSUMER_RETRY_DELAYS_MS": "100,200,400",
        "RECONNECT_INITIAL_SECONDS": "0.1",
        "RECONNECT_MAX_SECONDS": "1",
        "AMQP_HEARTBEAT": "2",
    }


OpenService = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def open_service(service_env: dict[str, str]) -> OpenService:
    """``async with open_service(build_app, Settings, clock=…, **overrides) as client``: a service
    app in-process, with its lifespan (relay, consumers) running and the run's settings."""

    def open_app(
        build_app: Callable[..., FastAPI],
        settings_class: type[BaseServiceSettings],
        clock: Clock | None = None,
        **overrides: Any,
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = settings_class(**{**service_env, **overrides})
        app = build_app(settings, clock=clock)
        return app_client(app, f"http://{settings_class.service_name}")

    return open_app


@pytest.fixture
def users(identity: Identity) -> Users:
    return Users(identity.minter)


@pytest.fixture(scope="session")
def google_stack(service_env: dict[str, str], identity: Identity) -> Iterator[GoogleStack]:
    """The Google emulator and the accounts service, started once for the run (use ``google``)."""
    with run_google_stack(service_env, identity.key_dir) as stack:
        yield stack


@pytest.fixture
def google(
    google_stack: GoogleStack, service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[GoogleStack]:
    """The run's Google emulator and accounts service (a ``GoogleStack``): ``await
    google.connect(user, ["calendar"])``, ``await google.requests(user=email)``,
    ``google.credentials("calendar")``. During the test, ``GOOGLE_ROOT_URL`` and ``ACCOUNTS_URL``
    are set in the environment and ``GOOGLE_ROOT_URL`` in ``service_env``, where services'
    settings read them; both are undone afterwards, so no other test or child process sees them.
    Faults the test injected and left queued (it failed before meeting them) are dropped after
    it, so they never reach the next test."""
    for name, value in google_stack.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(service_env, "GOOGLE_ROOT_URL", google_stack.root_url)
    try:
        yield google_stack
    finally:
        httpx.delete(f"{google_stack.emulator_url}/_emulator/faults", timeout=10).raise_for_status()


@pytest.fixture(scope="module")
def crm_url(service_env: dict[str, str]) -> Iterator[str]:
    """The CRM, on a socket: services ask it about records and users. Per module, so its outbox
    relay never outlives the tests that use it (a relay left running would publish what later
    suites' CRMs commit)."""
    # Unfinished lifecycle jobs are resumed by the requests (and the tests) that mean to.
    settings: dict[str, Any] = {**service_env, "jobs_enabled": False}
    with serve_in_thread(build_crm(CrmSettings(**settings))) as url:
        yield url


@pytest_asyncio.fixture
async def world(
    google: GoogleStack,
    crm_url: str,
    service_env: dict[str, str],
    identity: Identity,
    database_url: str,
) -> AsyncIterator[World]:
    """What a Google-facing service under test runs beside (``ServiceUnderTest(world, …)``)."""
    async with httpx.AsyncClient(base_url=crm_url, timeout=30) as crm:
        yield World(google, crm, crm_url, service_env, identity, database_url)
