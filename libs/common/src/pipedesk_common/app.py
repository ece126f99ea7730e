"""``create_app``: the wiring every service shares, so a service's own app.py stays small."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import aio_pika
import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

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
from pipedesk_common.db import create_engine, create_sessionmaker, ping
from pipedesk_common.errors import ServiceUnavailable, Unauthorized, install_error_handlers
from pipedesk_common.keys import load_service_key
from pipedesk_common.observability import (
    BodySizeLimitMiddleware,
    ReadinessCheck,
    RequestContextMiddleware,
    configure_logging,
    health_router,
)
from pipedesk_common.pagination import CursorCodec
from pipedesk_common.settings import BaseServiceSettings

log = logging.getLogger(__name__)

Lifespan = Callable[["ServiceContext"], AbstractAsyncContextManager[None]]


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

    def issuer(self) -> ServiceTokenIssuer:
        if self.service_token_issuer is None:
            raise ServiceUnavailable("this service has no signing key for service tokens")
        return self.service_token_issuer


async def broker_ping(url: str) -> None:
    connection = await aio_pika.connect(url, timeout=3)
    await connection.close()


def build_context(settings: BaseServiceSettings, clock: Clock) -> ServiceContext:
    engine = create_engine(settings)
    http = httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0), follow_redirects=False)
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
    )


def create_app(
    settings: BaseServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter],
    clock: Clock | None = None,
    lifespans: Sequence[Lifespan] = (),
    description: str = "",
) -> FastAPI:
    """A service app with auth, errors, health, metrics, request ids and a database session."""
    configure_logging(settings.service_name, settings.log_level)
    effective_clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = build_context(settings, effective_clock)
        app.state.context = context
        app.state.sessionmaker = context.sessionmaker
        try:
            async with _nested(context, lifespans):
                yield
        finally:
            await context.http.aclose()
            await context.engine.dispose()

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    def readiness_checks() -> Mapping[str, ReadinessCheck]:
        context: ServiceContext = app.state.context
        return {
            "database": lambda: ping(context.engine),
            "broker": lambda: broker_ping(settings.amqp_url),
        }

    app.include_router(health_router(readiness_checks))
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    return app


@asynccontextmanager
async def _nested(context: ServiceContext, lifespans: Sequence[Lifespan]) -> AsyncIterator[None]:
    if not lifespans:
        yield
        return
    first, *rest = lifespans
    async with first(context), _nested(context, rest):
        yield


def context_of(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


ContextDep = Annotated[ServiceContext, Depends(context_of)]

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
    return await context.user_tokens.principal(_raw_token(credentials))


async def current_service(
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_service_bearer)],
) -> ServiceCaller:
    return await context.service_tokens.caller(_raw_token(credentials))


PrincipalDep = Annotated[Principal, Depends(current_principal)]
ServiceCallerDep = Annotated[ServiceCaller, Depends(current_service)]
