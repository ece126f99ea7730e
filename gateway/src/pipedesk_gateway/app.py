"""The gateway process: authenticate, rate-limit, route, stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipedesk_common.app import ServiceContext, create_app
from pipedesk_common.auth import bearer_token
from pipedesk_common.clock import Clock
from pipedesk_common.errors import AppError, NotFound, problem_response
from pipedesk_common.observability import ROUTE_LABEL, BodyLimit, ReadinessCheck
from pipedesk_common.uploads import drive_upload_limits, gmail_send_limits
from pipedesk_gateway.api_docs import api_docs_router
from pipedesk_gateway.console import console_router
from pipedesk_gateway.forwarded import TrustedProxyMiddleware, networks
from pipedesk_gateway.openapi import MergedOpenApi
from pipedesk_gateway.proxy import forward, relay
from pipedesk_gateway.ratelimit import (
    Bucket,
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    retry_after,
)
from pipedesk_gateway.routing import ROUTES, RouteClass, Target, target_of
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_gateway.upstream import UpstreamPool

_TARGET = "pipedesk.gateway.target"  # where ProxiedFirst leaves a proxied request's target
BUCKET_LISTS_REMEMBERED = 4096  # callers whose bucket names are kept

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

# CORS: every request header a client of the API sends (a preflight naming another is refused),
# and every response header a page needs to read.
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "Last-Event-ID",
    "X-Request-ID",
    "traceparent",
    "tracestate",
]
CORS_EXPOSED_HEADERS = [
    "ETag",
    "Timeline-Version",
    "Location",
    "Retry-After",
    "X-Request-ID",
    "WWW-Authenticate",
    "Content-Disposition",
]


class Cors(CORSMiddleware):
    """Starlette's CORS middleware, the same answers, with a shorter way for a request that
    carries no ``Origin`` (every request but a browser's cross-origin ones): Starlette reads such
    a request's headers into a mapping and its answer's into another, only to add ``Origin`` to
    the answer's ``Vary``, which this does on the raw headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and all(name != b"origin" for name, _ in scope["headers"]):
            await self.app(scope, receive, _varying_on_origin(send))
            return
        await super().__call__(scope, receive, send)


def _varying_on_origin(send: Send) -> Send:
    """``send``, adding ``Origin`` to the answer's ``Vary`` as Starlette's CORS middleware does:
    one ``Vary`` header, where the first was, holding every value the answer had and then
    ``Origin``."""

    async def send_varying(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            found = [index for index, (name, _) in enumerate(headers) if name == b"vary"]
            vary = (b"vary", b", ".join([*(headers[index][1] for index in found), b"Origin"]))
            if found:
                headers[found[0]] = vary
                for index in reversed(found[1:]):
                    del headers[index]
            else:
                headers.append(vary)
            message["headers"] = headers
        await send(message)

    return send_varying


class Gateway:
    """What the catch-all route needs: upstream clients, limits, and where each service lives."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.urls = {service: settings.url_of(service) for _, service in ROUTES}
        timeout = httpx.Timeout(
            settings.read_timeout, connect=settings.connect_timeout, pool=settings.connect_timeout
        )
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections // 2,
        )
        self.http = httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)
        # Every request but event streams goes through these (see ProxiedFirst).
        self.upstreams = {
            service: UpstreamPool(
                url,
                max_connections=settings.max_connections,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                pool_timeout=settings.connect_timeout,
            )
            for service, url in self.urls.items()
        }
        # Event streams get their own pool and no read timeout, so they never starve requests;
        # when every stream connection is taken, a new stream is refused (503), never queued.
        self.streams = httpx.AsyncClient(
            timeout=httpx.Timeout(
                None, connect=settings.connect_timeout, pool=settings.connect_timeout
            ),
            limits=httpx.Limits(max_connections=settings.max_streams, max_keepalive_connections=0),
            follow_redirects=False,
        )
        self.redis = (
            Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            if settings.redis_url
            else None
        )
        self.limiter: RateLimiter = (
            RedisRateLimiter(self.redis) if self.redis is not None else MemoryRateLimiter()
        )
        self.limits = {
            RouteClass.DEFAULT: Limit.parse(settings.rate_limit_default),
            RouteClass.SENSITIVE: Limit.parse(settings.rate_limit_sensitive),
            RouteClass.PUBLIC: Limit.parse(settings.rate_limit_public),
        }
        self.openapi = MergedOpenApi(self.http, self.urls, title="PipeDesk API")
        self._buckets: dict[
            tuple[RouteClass, str | None, str | None, str | None], list[Bucket]
        ] = {}

    async def close(self) -> None:
        for pool in self.upstreams.values():
            await pool.close()
        await self.http.aclose()
        await self.streams.aclose()
        if self.redis is not None:
            await self.redis.aclose()

    async def rate_limit(
        self, route_class: RouteClass, request: Request, org_id: str | None, user: str | None
    ) -> Response | None:
        """Take a token from each bucket of the request; the 429 to answer when one is empty."""
        client = request.client.host if request.client else None
        return await self.refusal(route_class, client, request.url.path, org_id, user)

    async def refusal(
        self,
        route_class: RouteClass,
        client: str | None,
        path: str,
        org_id: str | None,
        user: str | None,
    ) -> Response | None:
        """``rate_limit`` for a request known by its client address and path."""
        wait = await self.limiter.take(self.buckets(route_class, client, org_id, user))
        if wait <= 0:
            return None
        return problem_response(
            429,
            "too-many-requests",
            "Too many requests",
            f"the {route_class.value} rate limit is exhausted; retry later",
            instance=path,
            headers={"Retry-After": retry_after(wait)},
        )

    def buckets(
        self, route_class: RouteClass, client: str | None, org_id: str | None, user: str | None
    ) -> list[Bucket]:
        # A few callers send nearly every request: their buckets are named once, not per request.
        key = (route_class, client if org_id is None or user is None else None, org_id, user)
        known = self._buckets.get(key)
        if known is None:
            if len(self._buckets) >= BUCKET_LISTS_REMEMBERED:
                self._buckets.clear()
            known = self._buckets[key] = self._named_buckets(route_class, client, org_id, user)
        return known

    def _named_buckets(
        self, route_class: RouteClass, client: str | None, org_id: str | None, user: str | None
    ) -> list[Bucket]:
        limit = self.limits[route_class]
        # The stack's prefix keeps a second stack (a test run) sharing the Redis apart.
        name = f"{self.settings.broker_prefix}rl:{route_class.value}"
        if org_id is None or user is None:
            return [Bucket(f"{name}:ip:{client or 'unknown'}", limit)]
        return [
            Bucket(f"{name}:user:{org_id}:{user}", limit),
            Bucket(f"{name}:org:{org_id}", limit.scaled(self.settings.rate_limit_org_multiplier)),
        ]


class ProxiedFirst:
    """The gateway's outermost ASGI app. A proxied request — routed, neither an event stream
    nor an upload (whose bodies are streamed on, never held whole) — passes the app's own
    middlewares (CORS, trusted proxies, request context, body limit, input policy) and
    ``ProxyFront``, and nothing else: none of Starlette's error and body-limit layers, none of
    FastAPI's routing. Every other request goes to the app's whole middleware stack and routes."""

    def __init__(self, app: ASGIApp, proxied: ASGIApp, uploads: Sequence[BodyLimit]) -> None:
        self.app = app
        self.proxied = proxied
        self.uploads = tuple(uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in METHODS:
            # A method no route proxies: the catch-all answers 405, counted as unrouted.
            scope[ROUTE_LABEL] = "unrouted"
            await self.app(scope, receive, send)
            return
        target = target_of(scope["method"], scope["path"], _raw_path(scope))
        if target is None or target.streaming or any(u.applies(scope) for u in self.uploads):
            await self.app(scope, receive, send)
            return
        scope[ROUTE_LABEL] = target.label
        scope[_TARGET] = target
        await self.proxied(scope, receive, send)


class ProxyFront:
    """A proxied request's own work, as plain ASGI (see ``ProxiedFirst``): token, rate limit,
    forward."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        target: Target = scope[_TARGET]
        org_id = user = None
        if not target.public:
            context: ServiceContext = scope["app"].state.context
            authorization = next(
                (v.decode("latin-1") for n, v in scope["headers"] if n == b"authorization"), None
            )
            try:
                principal = await context.user_tokens.principal(bearer_token(authorization))
                context.refusals.check(principal)  # a deactivated user: 403 user-deactivated
            except AppError as exc:
                refusal = problem_response(
                    exc.status,
                    exc.slug,
                    exc.title,
                    exc.detail,
                    instance=path,
                    errors=exc.errors,
                    headers=exc.headers,
                )
                await refusal(scope, receive, send)
                return
            org_id, user = principal.org_id, principal.sub
        client = scope.get("client")
        refused = await self.gateway.refusal(
            target.route_class, client[0] if client else None, path, org_id, user
        )
        if refused is not None:
            await refused(scope, receive, send)
            return
        service = target.service
        await relay(
            scope, receive, send, self.gateway.urls[service], self.gateway.upstreams[service]
        )


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _raw_path(scope: Scope) -> str | None:
    raw: bytes | None = scope.get("raw_path")
    return None if raw is None else raw.decode("latin-1")


async def _dispatch(request: Request) -> Response:
    gateway = _gateway(request)
    target = target_of(request.method, request.url.path, _raw_path(request.scope))
    request.scope[ROUTE_LABEL] = "unrouted" if target is None else target.label
    if target is None:
        raise NotFound("no service answers this path")
    org_id = user = None
    if not target.public:
        context: ServiceContext = request.app.state.context
        principal = await context.user_tokens.principal(
            bearer_token(request.headers.get("authorization"))
        )
        context.refusals.check(principal)
        org_id, user = principal.org_id, principal.sub
    refused = await gateway.rate_limit(target.route_class, request, org_id, user)
    if refused is not None:
        return refused
    client = gateway.streams if target.streaming else gateway.http
    heartbeat = gateway.settings.sse_heartbeat_seconds if target.streaming else None
    return await forward(request, gateway.urls[target.service], client, heartbeat_every=heartbeat)


def _operations_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    async def merged_openapi(request: Request) -> JSONResponse:
        return JSONResponse(await _gateway(request).openapi.document())

    return router


def _proxy_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/{path:path}", _dispatch, methods=METHODS)
    return router


def build_app(settings: GatewaySettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    gateway = Gateway(settings)

    @asynccontextmanager
    async def gateway_lifespan(context: ServiceContext) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway.close()

    def readiness(context: ServiceContext) -> Mapping[str, ReadinessCheck]:
        checks: dict[str, ReadinessCheck] = {}
        if gateway.redis is not None:
            redis = gateway.redis

            async def redis_ping() -> None:
                await redis.ping()

            checks["redis"] = redis_ping
        for service in settings.ready_services:
            checks[service] = _health_check(gateway.http, gateway.urls[service])
        return checks

    uploads = [
        *drive_upload_limits(settings.drive_max_upload_bytes),
        *gmail_send_limits(settings.gmail_max_send_bytes),
    ]
    own_routes = [_operations_router(), api_docs_router()]
    if settings.console_enabled:
        own_routes.append(console_router(gateway))
    app = create_app(
        settings,
        title="PipeDesk gateway",
        routers=[*own_routes, _proxy_router()],
        clock=clock,
        lifespans=[gateway_lifespan],
        readiness=readiness,
        openapi_url=None,
        body_limits=uploads,
    )
    app.state.gateway = gateway
    app.add_middleware(TrustedProxyMiddleware, trusted=networks(settings.trusted_proxies))
    if settings.frontend_origins:
        app.add_middleware(
            Cors,
            allow_origins=settings.frontend_origins,
            allow_methods=METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    whole_stack = app.build_middleware_stack

    def proxied_first() -> ASGIApp:
        proxied: ASGIApp = ProxyFront(gateway)
        for cls, args, kwargs in reversed(app.user_middleware):
            proxied = cls(proxied, *args, **kwargs)
        return ProxiedFirst(whole_stack(), proxied, uploads)

    app.build_middleware_stack = proxied_first  # type: ignore[method-assign]
    return app


def _health_check(http: httpx.AsyncClient, base_url: str) -> ReadinessCheck:
    async def check() -> None:
        response = await http.get(f"{base_url}/healthz", timeout=2.0)
        response.raise_for_status()

    return check
