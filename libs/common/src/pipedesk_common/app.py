"""``create_app``: the wiring every service shares, so a service's own app.py stays small."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import aio_pika
import httpx
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.routing import BaseRoute

from pipedesk_common.amqp_runner import ConsumerSettings, QueueRunner
from pipedesk_common.auth import (
    JwksCache,
    Principal,
    ServiceCaller,
    ServiceTokenIssuer,
    ServiceTokenVerifier,
    TokenVerifier,
    bearer_token,
)
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.consumer import Consumer
from pipedesk_common.contract import document_input_policy, document_problems
from pipedesk_common.db import create_engine, create_sessionmaker, ping
from pipedesk_common.errors import ServiceUnavailable, Unauthorized, install_error_handlers
from pipedesk_common.idempotency import (
    IdempotencyMiddleware,
    IdempotentRequests,
    ReplayedAnswer,
    replayed_response,
)
from pipedesk_common.input_policy import InputPolicyMiddleware
from pipedesk_common.keys import load_service_key
from pipedesk_common.messaging import Topology
from pipedesk_common.observability import (
    BodyLimit,
    BodySizeLimitMiddleware,
    ReadinessCheck,
    RequestContextMiddleware,
    TracedTransport,
    configure_logging,
    configure_tracing,
    health_router,
)
from pipedesk_common.openapi_examples import add_examples
from pipedesk_common.outbox import OutboxRelay, RelaySettings
from pipedesk_common.pagination import CursorCodec
from pipedesk_common.reconnect import Backoff
from pipedesk_common.settings import BaseServiceSettings
from pipedesk_common.signin import SignInRefusals, follow_refusals

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
CONSUMER_READY_SECONDS = 10.0

Lifespan = Callable[["ServiceContext"], AbstractAsyncContextManager[None]]
T = TypeVar("T")


@dataclass
class ServiceContext:
    """Everything a running service holds for its lifetime; ``app.state.context``."""

    settings: BaseServiceSettings
    clock: Clock
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    user_tokens: TokenVerifier
    service_tokens: ServiceTokenVerifier
    cursors: CursorCodec
    service_token_issuer: ServiceTokenIssuer | None
    topology: Topology
    refusals: SignInRefusals
    parts: dict[type[Any], object] = field(default_factory=dict)

    def issuer(self) -> ServiceTokenIssuer:
        if self.service_token_issuer is None:
            raise ServiceUnavailable("this service has no signing key for service tokens")
        return self.service_token_issuer

    def provide(self, part: object) -> None:
        """Hold one of the service's own long-lived parts (its runtime, its job runner), found
        again by its type: ``part(type)`` or a ``provided(type)`` dependency."""
        self.parts[type(part)] = part

    def part(self, kind: type[T]) -> T:
        found = self.parts.get(kind)
        if not isinstance(found, kind):
            raise RuntimeError(f"this service provides no {kind.__name__}")
        return found


async def broker_ping(url: str) -> None:
    connection = await aio_pika.connect(url, timeout=3)
    await connection.close()


def build_context(settings: BaseServiceSettings, clock: Clock) -> ServiceContext:
    engine = create_engine(settings)
    # Calls to other services (and key sets) carry the trace context and the request id.
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(5.0, connect=2.0),
        follow_redirects=False,
        transport=TracedTransport(),
    )
    user_keys = JwksCache(settings.jwks_url, http=http, clock=clock)
    service_keys = JwksCache(settings.service_keys_url, http=http, clock=clock)
    signing_key = load_service_key(settings)
    return ServiceContext(
        settings=settings,
        clock=clock,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        http=http,
        user_tokens=TokenVerifier(
            user_keys,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            clock=clock,
            leeway=settings.auth_leeway_seconds,
        ),
        service_tokens=ServiceTokenVerifier(
            service_keys, audience=settings.service_name, clock=clock
        ),
        cursors=CursorCodec(settings.cursor_secret.get_secret_value().encode()),
        service_token_issuer=(
            ServiceTokenIssuer(settings.service_name, signing_key, clock=clock)
            if signing_key is not None
            else None
        ),
        topology=Topology(
            settings.broker_prefix,
            settings.broker_queue_expires_ms,
            settings.broker_queue_ledger,
            stack=settings.stack,
        ),
        refusals=SignInRefusals(settings.service_name),
    )


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it. Cancelled again until it ends: a library (a driver
    mid-handshake) may turn a cancellation into an error of its own, which a retry loop would
    otherwise take for a reason to carry on."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)


def reconnect_backoff(settings: BaseServiceSettings) -> Backoff:
    return Backoff(settings.reconnect_initial_seconds, settings.reconnect_max_seconds)


def consumer_settings(settings: BaseServiceSettings) -> ConsumerSettings:
    return ConsumerSettings(
        prefetch=settings.consumer_prefetch,
        concurrency=settings.consumer_concurrency or settings.process_pool_size,
        batch_size=settings.consumer_batch_size,
        max_attempts=settings.consumer_max_attempts,
        delivery_limit=settings.consumer_delivery_limit,
        retry_delays_ms=tuple(settings.consumer_retry_delays_ms),
        backoff=reconnect_backoff(settings),
        heartbeat=settings.amqp_heartbeat,
    )


@asynccontextmanager
async def _background(
    context: ServiceContext, outbox: Table | None, consumers: Sequence[Consumer]
) -> AsyncIterator[None]:
    """The outbox relay and the consumers, as tasks living as long as the app."""
    settings = context.settings
    tasks: list[asyncio.Task[None]] = []
    stoppers: list[Callable[[], None]] = []
    if outbox is not None and settings.relay_enabled:
        relay = OutboxRelay(
            service=settings.service_name,
            engine=context.engine,
            table=outbox,
            topology=context.topology,
            amqp_url=settings.amqp_url,
            clock=context.clock,
            settings=RelaySettings(
                poll_interval=settings.outbox_poll_seconds,
                backoff=reconnect_backoff(settings),
                heartbeat=settings.amqp_heartbeat,
            ),
        )
        tasks.append(asyncio.create_task(relay.run(), name=f"{settings.service_name}-relay"))
        stoppers.append(relay.stop)
    consuming: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
    if settings.consumers_enabled:
        runner_settings = consumer_settings(settings)
        handling = asyncio.Semaphore(runner_settings.concurrency)  # shared by the process
        for consumer in consumers:
            runner = QueueRunner(
                consumer,
                sessionmaker=context.sessionmaker,
                topology=context.topology,
                amqp_url=settings.amqp_url,
                clock=context.clock,
                settings=runner_settings,
                handling=handling,
            )
            ready = asyncio.Event()
            task = asyncio.create_task(runner.run(ready), name=f"consumer-{consumer.queue}")
            consuming.append((ready, task))
            tasks.append(task)
            stoppers.append(runner.stop)
    try:
        await _until_consuming(consuming)
        yield
    finally:
        for stop in stoppers:
            stop()
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        await asyncio.gather(*(stop_task(task) for task in tasks))


async def _until_consuming(consuming: Sequence[tuple[asyncio.Event, asyncio.Task[None]]]) -> None:
    """Serve once every queue is declared and bound, so no event published from then on misses
    it. A broker that is down delays this at most ``CONSUMER_READY_SECONDS``: consumers keep
    trying in the background. A consumer that stopped (its queue is another stack's) stops the
    process: its error is raised."""
    waits = {asyncio.ensure_future(ready.wait()): task for ready, task in consuming}
    pending = set(waits) | {task for _, task in consuming}
    deadline = asyncio.get_running_loop().time() + CONSUMER_READY_SECONDS
    try:
        while any(not ready.is_set() for ready, _ in consuming):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for _, task in consuming:
                if task in done:
                    task.result()  # raises what stopped it
    finally:
        for wait in waits:
            wait.cancel()


def create_app(
    settings: BaseServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter],
    clock: Clock | None = None,
    lifespans: Sequence[Lifespan] = (),
    outbox: Table | None = None,
    consumers: Sequence[Consumer] = (),
    readiness: Callable[[ServiceContext], Mapping[str, ReadinessCheck]] | None = None,
    description: str = "",
    openapi_url: str | None = "/openapi.json",
    idempotency: Table | None = None,
    body_limits: Sequence[BodyLimit] = (),
    follow_refusals_of_crm: bool = True,
) -> FastAPI:
    """A service app with auth, errors, health, metrics, tracing, request ids, a database
    session, and — when given — the outbox relay and event consumers running beside it.
    With ``follow_refusals_of_crm`` (every service but the CRM, which reads its own directory),
    the CRM's deactivated users are read every ``AUTH_REFUSALS_REFRESH_SECONDS`` and refused."""
    configure_logging(settings.service_name, settings.log_level)
    configure_tracing(settings.service_name)
    effective_clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = build_context(settings, effective_clock)
        if idempotency is not None:  # Idempotency-Key on the routes that declare it
            context.provide(IdempotentRequests(idempotency, effective_clock, context.engine))
        app.state.context = context
        app.state.sessionmaker = context.sessionmaker
        refusals = (
            asyncio.create_task(
                follow_refusals(
                    context.refusals,
                    http=lambda: context.http,
                    issuer=context.issuer,
                    crm_url=settings.crm_base_url,
                    every=settings.auth_refusals_refresh_seconds,
                ),
                name=f"{settings.service_name}-refusals",
            )
            if follow_refusals_of_crm and context.service_token_issuer is not None
            else None
        )
        try:
            # The app's own parts first: consumers and the relay start once they exist, and
            # stop before they go.
            async with _nested(context, lifespans), _background(context, outbox, consumers):
                yield
        finally:
            if refusals is not None:
                await stop_task(refusals)
            await context.http.aclose()
            await context.engine.dispose()

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=openapi_url,
        # RequestContextMiddleware already traces, measures and logs every request: FastAPI's
        # own telemetry would do it all a second time.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    generated = app.openapi

    def documented_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_examples(document_input_policy(document_problems(generated())))
        return app.openapi_schema

    app.openapi = documented_openapi  # type: ignore[method-assign]
    app.state.consumers = tuple(consumers)  # the queues it consumes, for the event catalog
    if idempotency is not None:

        async def replay(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, ReplayedAnswer)
            return replayed_response(exc.answer)

        app.add_exception_handler(ReplayedAnswer, replay)

    def readiness_checks() -> Mapping[str, ReadinessCheck]:
        context: ServiceContext = app.state.context
        if readiness is not None:
            return readiness(context)
        return {
            "database": lambda: ping(context.engine),
            "broker": lambda: broker_ping(settings.amqp_url),
        }

    app.include_router(health_router(readiness_checks))
    undeclared = internal_routes_without_callers(routers)
    if undeclared:
        raise ValueError(f"internal routes must declare their callers: {', '.join(undeclared)}")
    for router in routers:
        app.include_router(router)
    # Innermost first: the size limit applies before the input policy reads a body.
    if idempotency is not None:
        app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(InputPolicyMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes, limits=body_limits
    )
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    return app


# The attribute ``pipedesk_common.internal.callers`` sets on its dependency: the services allowed.
CALLERS_ATTRIBUTE = "allowed_services"


def internal_routes_without_callers(routers: Sequence[APIRouter]) -> list[str]:
    """The ``/internal/…`` routes of ``routers`` that name no calling services."""

    def declares(dependant: Dependant) -> bool:
        return any(
            hasattr(dependency.call, CALLERS_ATTRIBUTE) or declares(dependency)
            for dependency in dependant.dependencies
        )

    def undeclared(routes: Sequence[BaseRoute], prefix: str) -> Iterator[str]:
        for route in routes:
            included = getattr(route, "original_router", None)  # a router included in a router
            if isinstance(included, APIRouter):
                context = getattr(route, "include_context", None)
                yield from undeclared(included.routes, prefix + getattr(context, "prefix", ""))
            elif (
                isinstance(route, APIRoute)
                and (prefix + route.path).startswith("/internal/")
                and not declares(route.dependant)
            ):
                yield f"{' '.join(sorted(route.methods or ()))} {prefix + route.path}"

    return [found for router in routers for found in undeclared(router.routes, "")]


@asynccontextmanager
async def _nested(context: ServiceContext, lifespans: Sequence[Lifespan]) -> AsyncIterator[None]:
    if not lifespans:
        yield
        return
    first, *rest = lifespans
    async with first(context), _nested(context, rest):
        yield


def running_context(app: FastAPI) -> ServiceContext:
    """The context of a running app (its lifespan has started)."""
    context: ServiceContext = app.state.context
    return context


async def context_of(request: Request) -> ServiceContext:
    return running_context(request.app)


ContextDep = Annotated[ServiceContext, Depends(context_of)]


def provided(kind: type[T]) -> Callable[[ServiceContext], Awaitable[T]]:
    """A dependency answering the part of type ``kind`` the running service provides:
    ``RuntimeDep = Annotated[Runtime, Depends(provided(Runtime))]``."""

    async def dependency(context: ContextDep) -> T:
        return context.part(kind)

    return dependency


_bearer = HTTPBearer(auto_error=False, description="An access token from the identity provider")
_service_bearer = HTTPBearer(
    auto_error=False, scheme_name="ServiceToken", description="A service token (internal routes)"
)


def _raw_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise Unauthorized("missing bearer token")
    return bearer_token(f"{credentials.scheme} {credentials.credentials}")


async def current_principal(
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The token's user, unless the org directory deactivated them (``403 user-deactivated``)."""
    principal = await context.user_tokens.principal(_raw_token(credentials))
    context.refusals.check(principal)
    return principal


async def current_service(
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_service_bearer)],
) -> ServiceCaller:
    return await context.service_tokens.caller(_raw_token(credentials))


PrincipalDep = Annotated[Principal, Depends(current_principal)]
ServiceCallerDep = Annotated[ServiceCaller, Depends(current_service)]
