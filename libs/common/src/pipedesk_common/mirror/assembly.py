"""``google_service``: a Google service's whole app from what only it knows (``GoogleProduct``).

The kit assembles the rest, the same for every product:

- the ``<product>.inbound`` consumer: CRM's access lists into the access replica (the product
  told of each newer one, when it asks to be), and the user's
  Google connection — ``disconnected``/``revoked`` stop their syncs (pending requests dropped,
  push channels suspended, health ``needs_reconnect``); ``connected`` resumes with a full resync
  (channels opened again first);
- the runtime (units of work, clock, the product's Google client with ``PRODUCT_SCOPES`` and the
  credentials provider, access replica, directory, idempotency keys, coalesced sync work, health,
  push channels), provided to routes by type;
- the periodic jobs — the product's, pruning idempotency keys, renewing push channels — and
  ``POST /internal/jobs/{name}``; the push webhook; ``POST /internal/sync/resync``;
- the sync health gauges, counted again every ``HEALTH_METRICS_SECONDS``;
- for a product with a ``lifecycle``, its part of the user lifecycle
  (``pipedesk_common.lifecycle``): a deactivated user's pending syncs dropped, their health
  ``needs_reconnect``, their push channels stopped at Google, then the product's own part; and
  for a deletion of their Google data, their channels stopped, the product's own part, then
  every row of theirs in the product's schema deleted (``pipedesk_common.erasure``); and when
  the user disconnects Google for the product, called by the accounts service before it revokes
  the grant, their pending syncs dropped, their push channels stopped at Google and kept
  suspended (opened again on a reconnect), then the product's own part (Gmail's watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Protocol, TypedDict, TypeVar, Unpack, runtime_checkable

from fastapi import APIRouter, FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.access import AccessReplica, AccessStored
from pipedesk_common.app import ContextDep, ServiceContext, create_app, running_context
from pipedesk_common.background import BackgroundWork
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.coalesce import Coalescer
from pipedesk_common.consumer import Consumer
from pipedesk_common.directory import OrgDirectory
from pipedesk_common.erasure import (
    erase_events,
    erase_org_rows,
    erase_remembered_answers,
    erase_user_rows,
)
from pipedesk_common.errors import PROBLEM_TYPE_BASE
from pipedesk_common.events import Event, registered_types
from pipedesk_common.events.accounts import (
    GoogleConnected,
    GoogleConnectionData,
    GoogleDisconnected,
    GoogleRevoked,
)
from pipedesk_common.events.sync import SyncProblem, SyncStateChanged
from pipedesk_common.google import GoogleApi, accounts_credentials
from pipedesk_common.google.calls import RetryPolicy
from pipedesk_common.google.credentials import (
    CredentialsProvider,
    GoogleNotConnected,
    GoogleReconnectRequired,
    GoogleUser,
)
from pipedesk_common.google.push import PushChannels, WatchCall, suspend_user_channels
from pipedesk_common.google.scopes import PRODUCT_SCOPES
from pipedesk_common.idempotency import IdempotencyKeys
from pipedesk_common.internal import jobs_router
from pipedesk_common.lifecycle import (
    GoogleDataDeletion,
    GoogleDisconnection,
    OrgOffboarding,
    UserDeactivation,
    google_disconnect_router,
    lifecycle_router,
)
from pipedesk_common.messaging import raise_if_cancelling
from pipedesk_common.mirror.health import SyncHealth
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.routes import ResolveChannel, sync_router, webhook_router
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.mirror.settings import GoogleServiceSettings, PushServiceSettings
from pipedesk_common.mirror.tables import MirrorTables
from pipedesk_common.mirror.work import SyncRun, SyncWork
from pipedesk_common.observability import BodyLimit
from pipedesk_common.periodic import JobRunner, PeriodicJob
from pipedesk_common.signin import UserDeactivated
from pipedesk_common.uow import UnitOfWork, on_commit

log = logging.getLogger(__name__)

G = TypeVar("G")
S = TypeVar("S", bound=GoogleServiceSettings)
CredentialsFactory = Callable[[ServiceContext], CredentialsProvider]


@runtime_checkable
class Watching(Protocol):
    """The Google client of a product Google notifies: it opens and stops push channels."""

    def watcher(self, address: str) -> WatchCall: ...

    async def stop(self, user: GoogleUser, channel_id: str, resource_id: str) -> None: ...


# A product's own part of a deactivation, after the kit's: (runtime, org_id, user_id) → what it
# ended, by kind. Idempotent.
ProductDeactivation = Callable[["MirrorRuntime[Any, Any]", str, str], Awaitable[dict[str, int]]]
# A product's own part of an org's offboarding, before the kit deletes the org's rows:
# (runtime, org_id) → what it stopped or deleted, by kind. Idempotent.
ProductOffboarding = Callable[["MirrorRuntime[Any, Any]", str], Awaitable[dict[str, int]]]


@dataclass(frozen=True)
class ProductLifecycle:
    """A product takes part in the user lifecycle; the kit's part runs first, then
    ``user_deactivated`` (None: the kit's part is the whole of it).

    ``user_google_data_deleted``: what the product must do before the kit deletes the user's
    rows of every table of its schema keyed by ``org_id`` and ``user_id`` (stop a watch at
    Google, remove shares…), and any other row of theirs; what it deleted, by kind."""

    user_deactivated: ProductDeactivation | None = None
    user_google_data_deleted: ProductDeactivation | None = None
    # Tables keyed by ``user_id`` that hold the org's, not the user's (e.g. Drive's root).
    keep_tables: tuple[str, ...] = ()
    # What the product stops at Google before the kit deletes the org's rows (a watch).
    org_offboarded: ProductOffboarding | None = None
    # What the product stops at Google, after the kit's channels, when the user disconnects
    # Google for it while the grant still works (a watch).
    google_disconnected: ProductDeactivation | None = None


class KitLifecycle:
    """A Google service's part of the lifecycle contract (``UserLifecycle``)."""

    def __init__(self, runtime: MirrorRuntime[Any, Any], lifecycle: ProductLifecycle) -> None:
        self.runtime = runtime
        self.lifecycle = lifecycle

    async def user_deactivated(
        self, deactivation: UserDeactivation, user_id: str
    ) -> dict[str, int]:
        running, org_id = self.runtime, deactivation.org_id
        problem = SyncProblem(
            type=PROBLEM_TYPE_BASE + UserDeactivated.slug, message="the user was deactivated"
        )
        async with running.uow.write() as session:
            await running.work.forget_user(session, org_id, user_id)
            await running.health.access_ended(session, org_id, user_id, problem)
        ended = {"channels": 0}
        if running.channels is not None:
            # Strict: a channel Google was unavailable to stop is stopped again on the next call.
            ended["channels"] = await running.channels.stop_all(org_id, user_id, strict=True)
        if self.lifecycle.user_deactivated is not None:
            ended |= await self.lifecycle.user_deactivated(running, org_id, user_id)
        return ended

    async def user_google_data_deleted(
        self, deletion: GoogleDataDeletion, user_id: str
    ) -> dict[str, int]:
        """The user's pending syncs dropped, their channels stopped at Google (strictly), the
        product's own part, then every row of theirs in the product's schema deleted."""
        running, org_id = self.runtime, deletion.org_id
        async with running.uow.write() as session:
            await running.work.forget_user(session, org_id, user_id)
        deleted = {"channels": 0}
        if running.channels is not None:
            deleted["channels"] = await running.channels.stop_all(org_id, user_id, strict=True)
        if self.lifecycle.user_google_data_deleted is not None:
            deleted |= await self.lifecycle.user_google_data_deleted(running, org_id, user_id)
        async with running.uow.write() as session:
            await running.work.forget_user(session, org_id, user_id)
            rows = await erase_user_rows(
                session,
                running.tables.outbox.metadata,
                org_id,
                user_id,
                keep=self.lifecycle.keep_tables,
            )
            events = await erase_events(session, running.tables.outbox, [user_id])
            answers = await erase_remembered_answers(
                session, running.tables.idempotency_keys, org_id, user_id
            )
        for kind, count in (("outbox_events", events), ("idempotent_answers", answers)):
            if count:
                rows[kind] = count
        for kind, count in rows.items():
            deleted[kind] = deleted.get(kind, 0) + count
        return deleted

    async def user_google_disconnected(
        self, disconnection: GoogleDisconnection, user_id: str
    ) -> dict[str, int]:
        """The user disconnects Google for this product (the grant still works): their pending
        syncs dropped, their push channels stopped at Google and kept suspended (a channel
        Google could not stop is marked stopped anyway and lapses at its expiry), then the
        product's own part. The product not named: nothing."""
        running, org_id = self.runtime, disconnection.org_id
        if running.product not in disconnection.products:
            return {}
        async with running.uow.write() as session:
            await running.work.forget_user(session, org_id, user_id)
        stopped = {"channels": 0}
        if running.channels is not None:
            stopped["channels"] = await running.channels.stop_all(org_id, user_id, suspend=True)
        if self.lifecycle.google_disconnected is not None:
            stopped |= await self.lifecycle.google_disconnected(running, org_id, user_id)
        return stopped

    async def org_offboarded(self, offboarding: OrgOffboarding, org_id: str) -> dict[str, int]:
        """Every push channel of the org's users stopped at Google (strictly), the product's
        own part, then every row of the org in the product's schema deleted."""
        running = self.runtime
        deleted = {"channels": 0}
        table = running.tables.channels
        if running.channels is not None and table is not None:
            async with running.uow.read() as session:
                users = (
                    await session.scalars(
                        select(table.c.user_id)
                        .where(table.c.org_id == org_id, table.c.stopped_at.is_(None))
                        .distinct()
                    )
                ).all()
            for user_id in sorted(users):
                deleted["channels"] += await running.channels.stop_all(org_id, user_id, strict=True)
        if self.lifecycle.org_offboarded is not None:
            deleted |= await self.lifecycle.org_offboarded(running, org_id)
        async with running.uow.write() as session:
            rows = await erase_org_rows(
                session, running.tables.outbox.metadata, org_id, outbox=running.tables.outbox
            )
        for kind, count in rows.items():
            deleted[kind] = deleted.get(kind, 0) + count
        return deleted


class AppOptions(TypedDict, total=False):
    """How a Google service reaches Google: the credentials provider (the accounts service by
    default) and the retry policy of its calls."""

    credentials: CredentialsFactory
    retry_policy: RetryPolicy | None


@dataclass(frozen=True)
class GoogleProduct(Generic[G, S]):
    """What a Google service is; the kit assembles the rest (see the module docstring)."""

    name: str  # PRODUCT_SCOPES' name, and the prefix of its queue, jobs, sync keys and events
    api_version: str
    title: str
    description: str
    tables: MirrorTables
    routers: Sequence[APIRouter]
    google: Callable[[GoogleApi], G]
    # One sync of a key: what ``SyncWork`` runs.
    sync: Callable[[MirrorRuntime[G, S]], SyncRun]
    # A full resync of a user: their watermarks reset (in the transaction given), the keys to sync.
    resync: Callable[[MirrorRuntime[G, S], AsyncSession, str, str], Awaitable[list[SyncKey]]]
    jobs: Callable[[MirrorRuntime[G, S]], list[PeriodicJob]]
    example_job: str
    # A product Google notifies (its client ``Watching``): which sync a channel's notification
    # asks for (None: the notification is ignored).
    push: ResolveChannel | None = None
    # Events of other services it follows, beyond access lists and Google connections.
    subscribe: Callable[[Consumer, Callable[[], MirrorRuntime[G, S]]], None] | None = None
    # Routes accepting bodies over the 1 MiB default (uploads), from the settings.
    body_limits: Callable[[S], Sequence[BodyLimit]] | None = None
    # What to do, in the consumer's transaction, when the access replica learns a record or a
    # newer access list (e.g. ask for a sync of what follows who may see the record).
    access_stored: Callable[[Callable[[], MirrorRuntime[G, S]]], AccessStored] | None = None
    # The Google account a user connected, for any product (in the consumer's transaction):
    # ``(runtime, session, org_id, user_id, email)``, email None once they disconnected.
    google_account: (
        Callable[[MirrorRuntime[G, S], AsyncSession, str, str, str | None], Awaitable[None]] | None
    ) = None
    # What else ends with the user's access (in the consumer's transaction), e.g. a watch.
    access_ended: (
        Callable[[MirrorRuntime[G, S], AsyncSession, str, str], Awaitable[None]] | None
    ) = None
    # Its part of the user lifecycle (None: it does not take part; the CRM does not call it).
    lifecycle: ProductLifecycle | None = None

    @property
    def inbound_queue(self) -> str:
        """The queue its consumer takes CRM's access lists and the user's connection from."""
        return f"{self.name}.inbound"

    def app(
        self, settings: S, clock: Clock | None = None, **options: Unpack[AppOptions]
    ) -> FastAPI:
        return google_service(self, settings, clock=clock, **options)


def sync_contract(product: str) -> type[SyncStateChanged]:
    """The registered ``<product>.sync.state_changed`` contract."""
    for event_type in registered_types().values():
        model = event_type.model
        if event_type.routing_key == f"{product}.sync.state_changed":
            assert issubclass(model, SyncStateChanged)
            return model
    raise LookupError(f"no {product}.sync.state_changed contract is registered")


def google_service(
    product: GoogleProduct[G, S],
    settings: S,
    *,
    clock: Clock | None = None,
    credentials: CredentialsFactory = accounts_credentials,
    retry_policy: RetryPolicy | None = None,
) -> FastAPI:
    clock = clock or SystemClock()
    tables = product.tables
    consumer = Consumer(product.inbound_queue, tables.inbox)

    def context() -> ServiceContext:
        return running_context(app)

    def runtime() -> MirrorRuntime[G, S]:
        running: MirrorRuntime[G, S] = context().part(MirrorRuntime)
        return running

    replica = AccessReplica(
        tables.access_replica,
        crm_url=settings.crm_base_url,
        http=lambda: context().http,
        issuer=lambda: context().issuer(),
        on_stored=product.access_stored(runtime) if product.access_stored else None,
    )
    replica.subscribe(consumer)
    _follow_connections(consumer, product, runtime)
    if product.subscribe is not None:
        product.subscribe(consumer, runtime)

    @asynccontextmanager
    async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
        built = _runtime(product, settings, context, clock, replica, credentials, retry_policy)
        context.provide(built)
        runner = JobRunner(tables.job_schedule, context.sessionmaker, clock, _jobs(built, product))
        context.provide(runner)
        gauges = asyncio.create_task(_count_health(built), name=f"{product.name}-health-gauges")
        try:
            async with runner.running(settings.jobs_enabled):
                yield
        finally:
            gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gauges
            await built.background.close()

    routers = [*product.routers, jobs_router(product.example_job), sync_router(product.resync)]
    if product.lifecycle is not None:
        lifecycle = product.lifecycle

        async def participant(context: ContextDep) -> KitLifecycle:
            return KitLifecycle(context.part(MirrorRuntime), lifecycle)

        routers.append(lifecycle_router(participant, tables.lifecycle_answers))
        routers.append(google_disconnect_router(participant))
    if product.push is not None:
        assert isinstance(settings, PushServiceSettings)
        routers.append(webhook_router(product.name, settings.webhook_path, product.push))
    app = create_app(
        settings,
        title=product.title,
        description=product.description,
        routers=routers,
        clock=clock,
        lifespans=[lifespan],
        outbox=tables.outbox,
        consumers=[consumer],
        body_limits=product.body_limits(settings) if product.body_limits else (),
        idempotency=tables.idempotency_keys,  # the routes that declare IDEMPOTENT
    )
    return app


def _runtime(
    product: GoogleProduct[G, S],
    settings: S,
    context: ServiceContext,
    clock: Clock,
    replica: AccessReplica,
    credentials: CredentialsFactory,
    retry_policy: RetryPolicy | None,
) -> MirrorRuntime[G, S]:
    tables, uow = product.tables, UnitOfWork(context.sessionmaker)
    api = GoogleApi(
        product.name,
        product.api_version,
        credentials=credentials(context),
        scopes=PRODUCT_SCOPES[product.name],
        root_url=settings.google_root_url,
        policy=retry_policy,
        clock=clock,
    )
    google = product.google(api)
    health = SyncHealth(
        product.name, tables.sync_health, tables.outbox, uow, clock, sync_contract(product.name)
    )
    background = BackgroundWork()
    coalescer = Coalescer(
        tables.work_requests,
        context.sessionmaker,
        clock,
        lease=timedelta(seconds=settings.sync_lease_seconds),
    )
    runtime = MirrorRuntime(
        product=product.name,
        settings=settings,
        tables=tables,
        uow=uow,
        clock=clock,
        google=google,
        replica=replica,
        directory=OrgDirectory(
            settings.crm_base_url, http=lambda: context.http, issuer=context.issuer
        ),
        idempotency=IdempotencyKeys(tables.idempotency_keys, clock),
        health=health,
        work=SyncWork(product.name, uow, coalescer, background, health),
        background=background,
        channels=_channels(product, settings, context, clock, google),
    )
    runtime.work.runs(product.sync(runtime))
    return runtime


def _channels(
    product: GoogleProduct[G, S],
    settings: S,
    context: ServiceContext,
    clock: Clock,
    google: G,
) -> PushChannels | None:
    table = product.tables.channels
    if product.push is None or table is None:
        return None
    assert isinstance(settings, PushServiceSettings)
    assert isinstance(google, Watching)
    return PushChannels(
        table,
        context.sessionmaker,
        clock,
        secret=settings.channel_secrets[0],
        ttl=timedelta(seconds=settings.channel_ttl_seconds),
        renew_before=timedelta(seconds=settings.channel_renew_before_seconds),
        watch=google.watcher(settings.webhook_address),
        stop=google.stop,
    )


def _jobs(runtime: MirrorRuntime[G, S], product: GoogleProduct[G, S]) -> list[PeriodicJob]:
    async def prune_idempotency_keys() -> int:
        async with runtime.uow.write() as session:
            return await runtime.idempotency.prune(session)

    jobs = [
        *product.jobs(runtime),
        PeriodicJob(
            f"{product.name}.prune-idempotency-keys", timedelta(hours=1), prune_idempotency_keys
        ),
    ]
    if runtime.channels is not None:
        assert isinstance(runtime.settings, PushServiceSettings)
        interval = timedelta(seconds=runtime.settings.renew_interval_seconds)
        jobs.append(
            PeriodicJob(f"{product.name}.renew-channels", interval, runtime.channels.renew_due)
        )
    return jobs


async def _count_health(runtime: MirrorRuntime[G, S]) -> None:
    """Count the accounts in each sync state now and then, for the gauges."""
    while True:
        try:
            await runtime.health.publish_gauges()
        except Exception:  # the database may be away; the next round counts again
            raise_if_cancelling()
            log.warning("could not count the sync health of %s", runtime.product, exc_info=True)
        await asyncio.sleep(runtime.settings.health_metrics_seconds)


def _follow_connections(
    consumer: Consumer,
    product: GoogleProduct[G, S],
    runtime: Callable[[], MirrorRuntime[G, S]],
) -> None:
    """The user's Google connection, as the accounts service announces it."""

    async def ended(session: AsyncSession, event: Event[Any], problem: SyncProblem) -> None:
        data = event.data
        assert isinstance(data, GoogleConnectionData)
        if product.name not in data.products:
            return
        running = runtime()
        await running.work.forget_user(session, event.org_id, data.user_id)
        if running.tables.channels is not None:
            await suspend_user_channels(
                session, running.tables.channels, running.clock, event.org_id, data.user_id
            )
        await running.health.access_ended(session, event.org_id, data.user_id, problem)
        if product.access_ended is not None:
            await product.access_ended(running, session, event.org_id, data.user_id)

    async def account(session: AsyncSession, event: Event[Any], email: str | None) -> None:
        if product.google_account is not None:
            data = event.data
            await product.google_account(runtime(), session, event.org_id, data.user_id, email)

    @consumer.on(GoogleDisconnected)
    async def on_disconnected(session: AsyncSession, event: Event[GoogleDisconnected]) -> None:
        if event.data.connection_ended:
            await account(session, event, None)
        problem = SyncProblem(
            type=PROBLEM_TYPE_BASE + GoogleNotConnected.slug,
            message="the user disconnected Google",
        )
        await ended(session, event, problem)

    @consumer.on(GoogleRevoked)
    async def on_revoked(session: AsyncSession, event: Event[GoogleRevoked]) -> None:
        problem = SyncProblem(
            type=PROBLEM_TYPE_BASE + GoogleReconnectRequired.slug,
            message=f"Google revoked the user's access: {event.data.reason}",
        )
        await ended(session, event, problem)

    @consumer.on(GoogleConnected)
    async def on_connected(session: AsyncSession, event: Event[GoogleConnected]) -> None:
        data = event.data
        if data.google_email:
            await account(session, event, data.google_email)
        if product.name not in data.products:
            return
        running = runtime()
        org_id, user_id = event.org_id, data.user_id
        await running.health.access_restored(session, org_id, user_id)
        keys = await product.resync(running, session, org_id, user_id)
        for key in keys:
            await running.work.record(session, key)
        on_commit(
            session,
            lambda: running.background.spawn(
                _resume(running, org_id, user_id, keys), name=f"resume {org_id}:{user_id}"
            ),
        )


async def _resume(
    runtime: MirrorRuntime[G, S], org_id: str, user_id: str, keys: list[SyncKey]
) -> None:
    """After a reconnect: channels opened again first (no change goes unnoticed), then the
    full resync of every key."""
    if runtime.channels is not None:
        await runtime.channels.resume(org_id, user_id)
    for key in keys:
        try:
            await runtime.work.drain(key)
        except Exception:  # kept in the user's health; the periodic sync tries again
            raise_if_cancelling()
            log.warning("resync of %s failed", key, exc_info=True)
