"""The gateway in front of real services: auth, routing, failures, limits, streaming, OpenAPI."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from pipedesk_common.auth import Role
from pipedesk_gateway.app import Gateway, build_app
from pipedesk_gateway.ratelimit import MemoryRateLimiter
from pipedesk_gateway.routing import RouteClass, is_public, is_public_operation, target_of
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_testkit.attacks import ATTACKS, forged_tokens
from pipedesk_testkit.identities import ActingUser, Identity, Users
from pipedesk_testkit.servers import free_port, run_process, serve_in_thread
from pipedesk_testkit.waiting import eventually

if TYPE_CHECKING:
    from conftest import GatewayClient

pytestmark = pytest.mark.asyncio


async def test_valid_tokens_pass_forged_ones_do_not_and_orgs_stay_apart(
    gateway_client: GatewayClient,
    upstreams: dict[str, str],
    users: Users,
    identity: Identity,
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with gateway_client(upstreams) as gateway:
        created = await gateway.post(
            "/api/leads", json={"title": "via gateway"}, headers=rep.headers
        )
        assert created.status_code == 201, created.text
        lead_id = created.json()["id"]
        assert (await gateway.get(f"/api/leads/{lead_id}", headers=rep.headers)).status_code == 200
        assert created.headers["x-request-id"]
        for name in ATTACKS:
            token = forged_tokens(identity)[name]()
            response = await gateway.get("/api/leads", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, name
            assert response.headers["content-type"] == "application/problem+json"
        outsider = users.other_org().make(Role.ADMIN, teams=["t1"])
        assert (
            await gateway.get(f"/api/leads/{lead_id}", headers=outsider.headers)
        ).status_code == 404
        timeline = await eventually(
            lambda: gateway.get(f"/api/timeline/lead/{lead_id}", headers=rep.headers),
            until=lambda response: response.status_code == 200 and response.json()["items"],
        )
        assert timeline.json()["items"][0]["title"] == "Lead created"
        unknown = await gateway.get("/api/nothing-here", headers=rep.headers)
        assert unknown.status_code == 404
        assert unknown.json()["detail"] == "no service answers this path"


async def test_a_stopped_service_is_502_and_a_stalled_one_504(
    gateway_client: GatewayClient,
    users: Users,
) -> None:
    stalled = FastAPI()
    release = threading.Event()  # the upstream runs on its own thread and event loop

    @stalled.get("/api/leads")
    async def slow() -> dict[str, str]:
        await asyncio.to_thread(release.wait, 30)  # answers once the test is done with it
        return {}

    rep = users.make(Role.REP)
    with serve_in_thread(stalled) as slow_url:
        try:
            urls = {"CRM_URL": slow_url, "TIMELINE_URL": f"http://127.0.0.1:{free_port()}"}
            async with gateway_client(urls, read_timeout=0.5) as gateway:
                down = await gateway.get(f"/api/timeline/lead/{uuid4()}", headers=rep.headers)
                assert down.status_code == 502
                assert down.headers["content-type"] == "application/problem+json"
                slow_answer = await gateway.get("/api/leads", headers=rep.headers)
                assert slow_answer.status_code == 504
                assert slow_answer.json()["status"] == 504
                not_ready = await gateway.get("/readyz")
                assert not_ready.status_code == 503
                assert not_ready.json()["checks"]["timeline"].startswith("unavailable")
        finally:
            release.set()  # so the server's thread stops at once


async def test_rate_limits_hold_across_two_gateway_processes_sharing_redis(
    service_env: dict[str, str], upstreams: dict[str, str], users: Users, redis_url: str
) -> None:
    ports = [free_port(), free_port()]
    env = {
        **service_env,
        **upstreams,
        "REDIS_URL": redis_url,
        "RATE_LIMIT_DEFAULT": "10/60",
        "LOG_LEVEL": "WARNING",
    }
    rep, other = users.make(Role.REP), users.make(Role.REP)
    with (
        run_process(
            ["-m", "pipedesk_gateway"],
            env={**env, "GATEWAY_PORT": str(ports[0])},
            ready_url=f"http://127.0.0.1:{ports[0]}/healthz",
        ),
        run_process(
            ["-m", "pipedesk_gateway"],
            env={**env, "GATEWAY_PORT": str(ports[1])},
            ready_url=f"http://127.0.0.1:{ports[1]}/healthz",
        ),
    ):
        async with httpx.AsyncClient(timeout=10) as http:
            responses = await asyncio.gather(
                *(
                    http.get(f"http://127.0.0.1:{ports[index % 2]}/api/leads", headers=rep.headers)
                    for index in range(20)
                )
            )
            # another user of the same org has a bucket of their own
            others = [
                await http.get(f"http://127.0.0.1:{port}/api/leads", headers=other.headers)
                for port in ports
            ]
        redis = Redis.from_url(env["REDIS_URL"])
        try:
            # the buckets carry the run's prefix, so no other stack sharing the Redis meets them
            bucket = f"{service_env['BROKER_PREFIX']}rl:default:user:{users.org_id}:{rep.sub}"
            assert await redis.exists(bucket) == 1
        finally:
            await redis.aclose()
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [429] * 10
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["content-type"] == "application/problem+json"
    assert [response.status_code for response in others] == [200, 200]


async def test_sensitive_routes_have_their_own_stricter_bucket(
    gateway_client: GatewayClient,
    upstreams: dict[str, str],
    users: Users,
) -> None:
    rep = users.make(Role.REP)
    async with gateway_client(
        upstreams,
        RATE_LIMIT_SENSITIVE="2/60",
        RATE_LIMIT_DEFAULT="100/60",
    ) as gateway:
        deletes = [
            await gateway.delete(f"/api/leads/{uuid4()}", headers=rep.headers) for _ in range(3)
        ]
        assert [response.status_code for response in deletes] == [404, 404, 429]
        assert (await gateway.get("/api/leads", headers=rep.headers)).status_code == 200


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str | None
    forwarded_for: str | None = None


@contextmanager
def recording_upstream() -> Iterator[tuple[dict[str, str], list[Recorded]]]:
    """One upstream for every service that answers 200 to anything and records what reached it:
    whatever the gateway lets through arrives here, checked by nobody else."""
    upstream = FastAPI()
    received: list[Recorded] = []

    @upstream.get("/internal/users/deactivated")
    async def deactivated() -> dict[str, list[str]]:
        """The CRM's deactivated users, which the gateway reads on its own: not a request it
        let through, so not recorded."""
        return {"items": []}

    @upstream.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def anything(path: str, request: Request) -> dict[str, bool]:
        received.append(
            Recorded(
                request.method,
                f"/{path}",
                request.headers.get("authorization"),
                request.headers.get("x-forwarded-for"),
            )
        )
        return {"ok": True}

    with serve_in_thread(upstream) as url:
        yield {"CRM_URL": url, "TIMELINE_URL": url, "ACCOUNTS_URL": url, "DRIVE_URL": url}, received


async def test_a_path_merely_ending_in_stream_needs_a_token_and_its_limits(
    gateway_client: GatewayClient, users: Users
) -> None:
    rep = users.make(Role.REP)
    lead = uuid4()
    with recording_upstream() as (urls, received):
        async with gateway_client(urls, RATE_LIMIT_SENSITIVE="1/60") as gateway:
            for method, path in (
                ("DELETE", f"/api/leads/{lead}/stream"),
                ("GET", "/api/accounts/google/stream"),
                ("POST", f"/api/timeline/lead/{lead}/stream"),
            ):
                response = await gateway.request(method, path)
                assert response.status_code == 401, (method, path)
            assert received == []
            # A signed-in DELETE is sensitive whatever its path ends in: one per minute.
            first = await gateway.delete(f"/api/leads/{lead}/stream", headers=rep.headers)
            second = await gateway.delete(f"/api/leads/{lead}/stream", headers=rep.headers)
            assert (first.status_code, second.status_code) == (200, 429)
            # The timeline's stream itself carries no token (its ticket is the service's).
            stream = await gateway.get(f"/api/timeline/lead/{lead}/stream?ticket=t")
            assert stream.status_code == 200


@pytest.mark.parametrize(
    "path", ["/api/contacts/qu%C3%94%16w", "/api/leads/%00", "/api/leads/a%0Ab", "/api/x%7F"]
)
async def test_control_characters_in_the_path_are_a_400_problem_at_the_gateway(
    gateway_client: GatewayClient, users: Users, path: str
) -> None:
    rep = users.make(Role.REP)
    with recording_upstream() as (urls, received):
        async with gateway_client(urls) as gateway:
            for headers in ({}, rep.headers):
                response = await gateway.get(path, headers=headers)
                assert response.status_code == 400, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["type"] == "urn:pipedesk:problem:invalid-path"
            assert (
                await gateway.get("/api/contacts/qu%C3%94w", headers=rep.headers)
            ).status_code == 200
    assert [call.path for call in received] == ["/api/contacts/quÔw"]


async def test_the_gateway_itself_refuses_forged_and_missing_tokens(
    gateway_client: GatewayClient, users: Users, identity: Identity
) -> None:
    rep = users.make(Role.REP)
    with recording_upstream() as (urls, received):
        async with gateway_client(urls) as gateway:
            refused = {"no token": {}, "empty bearer": {"Authorization": "Bearer "}}
            for name in ATTACKS:
                token = forged_tokens(identity)[name]()
                refused[name] = {"Authorization": f"Bearer {token}"}
            for name, headers in refused.items():
                for path in ("/api/leads", f"/api/timeline/lead/{uuid4()}"):
                    response = await gateway.get(path, headers=headers)
                    assert response.status_code == 401, (name, path)
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.headers["www-authenticate"].startswith("Bearer"), name
                    assert response.json()["instance"] == path
            missing = await gateway.get("/api/leads")
            assert missing.json() == {
                "type": "urn:pipedesk:problem:unauthorized",
                "title": "Authentication is required",
                "status": 401,
                "detail": "missing bearer token",
                "instance": "/api/leads",
            }
            assert received == []
            counted = {"service": "gateway", "method": "GET", "route": "/api/leads"}
            before = REGISTRY.get_sample_value(
                "pipedesk_http_requests_total", {**counted, "status": "200"}
            )
            allowed = await gateway.get("/api/leads", headers=rep.headers)
            after = REGISTRY.get_sample_value(
                "pipedesk_http_requests_total", {**counted, "status": "200"}
            )
    assert allowed.status_code == 200
    assert after == (before or 0) + 1  # counted under its route's label
    assert received == [Recorded("GET", "/api/leads", f"Bearer {rep.token}", "127.0.0.1")]


async def test_each_user_and_each_org_has_a_bucket_of_their_own(
    service_env: dict[str, str], gateway_client: GatewayClient, users: Users, redis_url: str
) -> None:
    rep, colleague, third = (users.make(Role.REP) for _ in range(3))
    outsider = users.other_org().make(Role.REP)
    redis = Redis.from_url(redis_url)
    with recording_upstream() as (urls, _):
        async with gateway_client(
            urls,
            REDIS_URL=redis_url,
            RATE_LIMIT_DEFAULT="2/60",
            RATE_LIMIT_ORG_MULTIPLIER="2",
        ) as gateway:

            async def statuses(user: ActingUser, count: int) -> list[int]:
                return [
                    (await gateway.get("/api/leads", headers=user.headers)).status_code
                    for _ in range(count)
                ]

            assert await statuses(rep, 3) == [200, 200, 429]
            assert await statuses(colleague, 2) == [200, 200]  # the user's bucket is their own
            assert await statuses(third, 1) == [429]  # the org's bucket (2 x 2) is empty
            assert await statuses(outsider, 2) == [200, 200]  # another org's is not
            refused = await gateway.get("/api/leads/anything", headers=rep.headers)
    try:
        # the buckets, under the stack's prefix so no other stack sharing the Redis meets them
        prefix = f"{service_env['BROKER_PREFIX']}rl:default"
        keys = [f"{prefix}:user:{users.org_id}:{rep.sub}", f"{prefix}:org:{users.org_id}"]
        assert await redis.exists(*keys) == 2
    finally:
        await redis.aclose()
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert {key: refused.json()[key] for key in ("title", "detail", "instance")} == {
        "title": "Too many requests",
        "detail": "the default rate limit is exhausted; retry later",
        "instance": "/api/leads/anything",
    }
    assert refused.json()["type"] == "urn:pipedesk:problem:too-many-requests"


async def test_routes_without_a_token_are_limited_per_client_address(
    service_env: dict[str, str], gateway_client: GatewayClient, users: Users, redis_url: str
) -> None:
    rep = users.make(Role.REP)
    with recording_upstream() as (urls, received):
        async with gateway_client(
            urls,
            REDIS_URL=redis_url,
            RATE_LIMIT_PUBLIC="2/60",
            RATE_LIMIT_DEFAULT="2/60",
        ) as gateway:
            callback = "/api/accounts/google/callback"
            public = [(await gateway.get(callback)).status_code for _ in range(3)]
            # the address's bucket is not the user's: a signed-in request still passes
            signed_in = await gateway.get("/api/leads", headers=rep.headers)
    redis = Redis.from_url(redis_url)
    try:  # the in-process client's address names the bucket
        bucket = f"{service_env['BROKER_PREFIX']}rl:public:ip:127.0.0.1"
        assert await redis.exists(bucket) == 1
    finally:
        await redis.aclose()
    assert public == [200, 200, 429]
    assert signed_in.status_code == 200
    assert [call.path for call in received] == [callback, callback, "/api/leads"]
    assert received[0].authorization is None


async def test_streams_uploads_and_unknown_paths_pass_the_app_and_are_limited_all_the_same(
    service_env: dict[str, str], gateway_client: GatewayClient, users: Users, redis_url: str
) -> None:
    """What ProxyFront hands on to the app: an event stream is limited per client address, an
    upload per user and per org, and an unknown path is counted under one bounded label."""
    rep = users.make(Role.REP)
    upload = f"/api/drive/records/lead/{uuid4()}/files"
    stream = f"/api/timeline/lead/{uuid4()}/stream"
    # A namespace of its own: the client address's bucket is not another test's.
    namespace = f"{service_env['BROKER_PREFIX']}{uuid4().hex[:8]}."
    with recording_upstream() as (urls, received):
        async with gateway_client(
            urls,
            REDIS_URL=redis_url,
            BROKER_PREFIX=namespace,
            RATE_LIMIT_PUBLIC="1/60",
            RATE_LIMIT_DEFAULT="1/60",
        ) as gateway:
            uploaded = {"service": "gateway", "method": "POST", "route": "/api/drive/{rest}"}
            uploaded_before = REGISTRY.get_sample_value(
                "pipedesk_http_requests_total", {**uploaded, "status": "200"}
            )
            uploads = [await gateway.post(upload, headers=rep.headers) for _ in range(2)]
            uploaded_after = REGISTRY.get_sample_value(
                "pipedesk_http_requests_total", {**uploaded, "status": "200"}
            )
            streams = [await gateway.get(stream, params={"ticket": "t"}) for _ in range(2)]
            unrouted = {"service": "gateway", "method": "GET", "route": "unrouted", "status": "404"}
            before = REGISTRY.get_sample_value("pipedesk_http_requests_total", unrouted) or 0
            for unknown in ("/api/nowhere-1", "/api/nowhere-2"):
                assert (await gateway.get(unknown, headers=rep.headers)).status_code == 404
            after = REGISTRY.get_sample_value("pipedesk_http_requests_total", unrouted)
            metrics = (await gateway.get("/metrics")).text
    assert [response.status_code for response in uploads] == [200, 429]
    assert [response.status_code for response in streams] == [200, 429]
    assert [refused.json()["instance"] for refused in (uploads[1], streams[1])] == [upload, stream]
    assert [call.path for call in received] == [upload, stream]
    prefix, org = f"{namespace}rl", rep.principal.org_id
    redis = Redis.from_url(redis_url)
    try:
        for bucket in (
            f"{prefix}:default:user:{org}:{rep.sub}",
            f"{prefix}:default:org:{org}",
            f"{prefix}:public:ip:127.0.0.1",
        ):
            assert await redis.exists(bucket) == 1, bucket
    finally:
        await redis.aclose()
    assert after == before + 2
    assert uploaded_after == (uploaded_before or 0) + 1
    assert "nowhere" not in metrics


async def test_an_upload_is_routed_by_its_path_as_sent_like_every_other_request(
    gateway_client: GatewayClient, users: Users
) -> None:
    """An upload, which ProxyFront hands on to the app, is routed as a proxied request is: an
    encoded letter is that letter, an encoded "/" is no separator (so "lead%2F.." is no ".."
    segment), and an encoded dot segment is one still."""
    rep = users.make(Role.REP)
    with recording_upstream() as (urls, received):
        async with gateway_client(urls) as gateway:
            answers = [
                await gateway.post(path, content=b"x", headers=rep.headers)
                for path in (
                    "/api/%64rive/records/lead/x/files",
                    "/api/drive/records/lead%2F../files",
                    "/api/drive/records/lead/%2E%2E/files",
                )
            ]
    assert [answer.status_code for answer in answers] == [200, 200, 404]
    assert answers[2].json()["detail"] == "no service answers this path"
    assert [call.path for call in received] == [
        "/api/drive/records/lead/x/files",
        "/api/drive/records/lead/../files",
    ]


async def test_a_wait_shorter_than_a_second_is_still_a_429(service_env: dict[str, str]) -> None:
    """Two requests a second: the third at once waits half a second, and is refused for it."""
    now = [1000.0]
    gateway = Gateway(GatewaySettings(**{**service_env, "RATE_LIMIT_DEFAULT": "2/1"}))
    gateway.limiter = MemoryRateLimiter(now=lambda: now[0])

    async def refusal() -> Response | None:
        return await gateway.refusal(RouteClass.DEFAULT, "10.0.0.1", "/api/leads", "org", "u1")

    try:
        assert [await refusal(), await refusal()] == [None, None]
        refused = await refusal()
        assert refused is not None
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
        now[0] += 0.5
        assert await refusal() is None
    finally:
        await gateway.close()


@pytest.mark.parametrize("trusted", ["", "127.0.0.1,10.0.0.0/8"])
async def test_forwarded_for_counts_only_from_the_configured_proxies(
    service_env: dict[str, str], trusted: str
) -> None:
    """The gateway as it runs (its own server, a real socket, reached from 127.0.0.1): a made-up
    X-Forwarded-For gets no bucket of its own unless the peer is a configured proxy."""
    with recording_upstream() as (urls, received):
        port = free_port()  # once the upstream listens: never its port
        env = {**service_env, **urls, "RATE_LIMIT_PUBLIC": "2/60", "GATEWAY_PORT": str(port)}
        env["GATEWAY_TRUSTED_PROXIES"] = trusted
        base = f"http://127.0.0.1:{port}"
        callback = f"{base}/api/accounts/google/callback"
        with run_process(["-m", "pipedesk_gateway"], env=env, ready_url=f"{base}/healthz"):
            async with httpx.AsyncClient(timeout=10) as http:
                statuses = []
                for n in range(3):
                    spoofed = {"X-Forwarded-For": f"203.0.113.{n}"}
                    statuses.append((await http.get(callback, headers=spoofed)).status_code)
                # Behind a trusted proxy, the client is the rightmost untrusted hop.
                chain = {"X-Forwarded-For": "198.51.100.7, 203.0.113.0, 10.1.2.3"}
                chained = await http.get(callback, headers=chain)
    if trusted:
        assert statuses == [200, 200, 200]
        assert chained.status_code == 200  # 203.0.113.0's bucket, one of two used
        assert received[0].forwarded_for == "203.0.113.0, 127.0.0.1"
        assert received[-1].forwarded_for == "198.51.100.7, 203.0.113.0, 10.1.2.3, 127.0.0.1"
    else:
        assert statuses == [200, 200, 429]
        assert chained.status_code == 429
        assert {call.forwarded_for for call in received} == {"127.0.0.1"}


async def test_a_streamed_response_passes_through_unbuffered(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = FastAPI()
    second_event_allowed = asyncio.Event()

    @upstream.get("/api/timeline/lead/{lead_id}/stream")
    async def stream(lead_id: str) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: first\n\n"
            for _ in range(200):
                if second_event_allowed.is_set():
                    break
                await asyncio.sleep(0.05)
            yield b"data: second\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    with serve_in_thread(upstream) as upstream_url:
        monkeypatch.setenv("TIMELINE_URL", upstream_url)
        gateway = build_app(GatewaySettings(**service_env, sse_heartbeat_seconds=0.2))
        with serve_in_thread(gateway) as gateway_url:
            async with (
                httpx.AsyncClient(timeout=10) as http,
                http.stream("GET", f"{gateway_url}/api/timeline/lead/{uuid4()}/stream") as response,
            ):
                assert response.status_code == 200
                chunks = response.aiter_bytes()
                received = b""
                while b"data: first" not in received:
                    received += await anext(chunks)
                assert b"second" not in received  # the first event came before the stream ended
                while b": keep-alive" not in received:
                    received += await anext(chunks)
                second_event_allowed.set()
                async for chunk in chunks:
                    received += chunk
    assert received.count(b"data: ") == 2
    assert b"data: second" in received


async def test_streams_beyond_the_pool_are_refused_with_503_not_queued(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = FastAPI()
    release = asyncio.Event()

    @upstream.get("/api/timeline/lead/{lead_id}/stream")
    async def stream(lead_id: str) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: open\n\n"
            for _ in range(200):
                if release.is_set():
                    return
                await asyncio.sleep(0.05)

        return StreamingResponse(events(), media_type="text/event-stream")

    with serve_in_thread(upstream) as upstream_url:
        monkeypatch.setenv("TIMELINE_URL", upstream_url)
        settings = GatewaySettings(**service_env, max_streams=1, connect_timeout=0.2)
        with serve_in_thread(build_app(settings)) as gateway_url:
            path = f"{gateway_url}/api/timeline/lead/{uuid4()}/stream"
            async with (
                httpx.AsyncClient(timeout=10) as http,
                http.stream("GET", path) as first,
            ):
                assert first.status_code == 200
                second = await http.get(path)
                release.set()
    assert second.status_code == 503
    assert second.headers["retry-after"] == "1"
    assert second.json()["type"].endswith("service-unavailable")


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid4()), path)


async def test_every_route_of_the_merged_openapi_refuses_a_request_without_a_token(
    gateway_client: GatewayClient,
    upstreams: dict[str, str],
) -> None:
    async with gateway_client(upstreams) as gateway:
        document = (await gateway.get("/openapi.json")).json()
        assert "/api/leads" in document["paths"]
        assert "/api/timeline/{record_type}/{record_id}" in document["paths"]
        assert not any(path.startswith("/internal") for path in document["paths"])
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        assert "Problem" in document["components"]["schemas"]
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                responses = operation["responses"]
                assert {"429", "502", "503", "504"} <= set(responses), (method, path)
                for status, response in responses.items():
                    if int(status) >= 400:
                        assert response["content"] == problem, (method, path, status)
        checked = 0
        for path, operations in document["paths"].items():
            for method in operations:
                if method.upper() not in {
                    "GET",
                    "POST",
                    "PUT",
                    "PATCH",
                    "DELETE",
                } or is_public_operation(method, path):
                    continue
                response = await gateway.request(method.upper(), concrete(path), json={})
                assert response.status_code == 401, f"{method.upper()} {path}"
                checked += 1
        assert checked >= 7
        assert (await gateway.get("/docs")).status_code == 200


async def test_options_and_405_name_the_methods_each_route_of_the_merged_openapi_serves(
    gateway_client: GatewayClient, upstreams: dict[str, str], users: Users
) -> None:
    rep = users.make(Role.REP)
    async with gateway_client(upstreams) as gateway:
        document = (await gateway.get("/openapi.json")).json()
        checked = 0
        for path, operations in document["paths"].items():
            if not path.startswith(("/api/leads", "/api/timeline")):
                continue
            documented = {method.upper() for method in operations} | {"OPTIONS"}
            allow = ", ".join(sorted(documented))
            answer = await gateway.options(concrete(path), headers=rep.headers)
            assert answer.status_code == 204, (path, answer.text)
            assert answer.headers["allow"] == allow, path
            unserved = sorted({"PUT", "PATCH", "DELETE", "POST"} - documented)
            if unserved:
                refused = await gateway.request(unserved[0], concrete(path), headers=rep.headers)
                assert refused.status_code == 405, (unserved[0], path)
                assert refused.headers["allow"] == allow, path
                assert refused.headers["content-type"] == "application/problem+json"
            checked += 1
        assert checked >= 10


async def test_an_id_holding_a_slash_round_trips_percent_encoded_through_the_gateway(
    gateway_client: GatewayClient, upstreams: dict[str, str], users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    async with gateway_client(upstreams) as gateway:
        made = await gateway.post(
            "/api/users",
            json={"id": "idp/team a/ana", "email": "ana@example.com", "role": "rep"},
            headers=admin.headers,
        )
        assert made.status_code == 201, made.text
        assert made.headers["location"] == "/api/users/idp%2Fteam%20a%2Fana"
        found = await gateway.get(made.headers["location"], headers=admin.headers)
    assert found.status_code == 200, found.text
    assert found.json()["id"] == "idp/team a/ana"


async def test_only_the_listed_routes_carry_no_token() -> None:
    assert is_public("POST", "/webhooks/google/calendar")
    assert is_public("GET", "/api/accounts/google/callback")
    assert is_public("GET", "/api/timeline/lead/1/stream")
    assert is_public("GET", "/api/timeline/deal/1/stream")
    for method, path in (
        ("GET", "/api/leads"),
        ("GET", "/api/accounts/google"),
        ("POST", "/webhooks/google/other"),
        ("GET", "/api/leads/1/streamer"),
        # a path that merely ends in /stream is not the timeline's stream
        ("GET", "/api/leads/1/stream"),
        ("DELETE", "/api/leads/1/stream"),
        ("GET", "/api/accounts/google/stream"),
        ("GET", "/api/timeline/lead/1/notes/stream"),
        # the right path with another method
        ("POST", "/api/timeline/lead/1/stream"),
        ("DELETE", "/webhooks/google/calendar"),
        ("POST", "/api/accounts/google/callback"),
    ):
        assert not is_public(method, path), (method, path)
        target = target_of(method, path)
        assert target is None or not target.public
        assert target is None or not target.streaming
    assert target_of("GET", "/api/leads/../internal/acl") is None
    assert target_of("GET", "/internal/acl/lead/1") is None
    # Sent percent-encoded, a dot segment is one still; an id's own "/" or dots are not
    assert target_of("GET", "/api/leads/../internal", "/api/leads/%2E%2E/internal") is None
    assert target_of("GET", "/api/users//x", "/api/users//x") is None
    assert target_of("GET", "/api/users//x", "/api/users/%2Fx") is not None
    assert target_of("GET", "/api/users/a..b", "/api/users/a..b") is not None


async def test_body_limit_cors_and_health(
    gateway_client: GatewayClient,
    upstreams: dict[str, str],
    users: Users,
) -> None:
    rep = users.make(Role.REP)
    origin = "https://app.pipedesk.example"
    async with gateway_client(upstreams, FRONTEND_ORIGIN=origin) as gateway:
        huge = await gateway.post(
            "/api/leads",
            content=b"x" * 2_000_000,
            headers={**rep.headers, "content-type": "application/json"},
        )
        assert huge.status_code == 413
        preflight = await gateway.options(
            "/api/leads",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == origin
        foreign = await gateway.options(
            "/api/leads",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in foreign.headers
        assert (await gateway.get("/healthz")).json() == {"status": "ok"}
        for lead in ("lead-label-1", "lead-label-2"):
            await gateway.get(f"/api/leads/{lead}", headers=rep.headers)
        # A method no route proxies is refused and counted as unrouted, not under the catch-all.
        traced = await gateway.request("TRACE", "/api/leads/lead-label-3", headers=rep.headers)
        assert traced.status_code == 405
        metrics = (await gateway.get("/metrics")).text
        assert (
            'pipedesk_http_requests_total{method="TRACE",route="unrouted",service="gateway",'
            'status="405"} 1.0' in metrics
        )
        # one bounded series for every lead path, never a series per id
        assert 'route="/api/leads/{rest}"' in metrics
        assert "lead-label" not in metrics
        assert "{path:path}" not in metrics


async def test_gmail_sends_have_their_own_body_limit_and_the_sensitive_bucket(
    service_env: dict[str, str], gateway_client: GatewayClient, users: Users, redis_url: str
) -> None:
    """Send and reply carry attachments: past the 1 MiB of other routes, up to
    GMAIL_MAX_SEND_BYTES; and sending mail is a sensitive route."""
    rep = users.make(Role.REP)
    namespace = f"{service_env['BROKER_PREFIX']}{uuid4().hex[:8]}."
    headers = {**rep.headers, "content-type": "application/json"}
    with recording_upstream() as (urls, received):
        async with gateway_client(
            {**urls, "GMAIL_URL": urls["CRM_URL"]},
            REDIS_URL=redis_url,
            BROKER_PREFIX=namespace,
            GMAIL_MAX_SEND_BYTES="3000000",
            RATE_LIMIT_SENSITIVE="1/60",
            RATE_LIMIT_DEFAULT="100/60",
        ) as gateway:
            sent = await gateway.post(
                "/api/gmail/messages", content=b"x" * 2_000_000, headers=headers
            )
            too_large = await gateway.post(
                f"/api/gmail/messages/{uuid4()}/reply", content=b"x" * 3_500_000, headers=headers
            )
            again = await gateway.post("/api/gmail/messages", content=b"{}", headers=headers)
            elsewhere = await gateway.patch("/api/gmail/mailbox", content=b"{}", headers=headers)
    assert [sent.status_code, too_large.status_code, again.status_code] == [200, 413, 429]
    assert elsewhere.status_code == 200  # the default bucket
    assert [call.path for call in received] == ["/api/gmail/messages", "/api/gmail/mailbox"]


async def test_a_header_value_beyond_ascii_reaches_the_service_as_sent(
    gateway_client: GatewayClient, upstreams: dict[str, str], users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with gateway_client(upstreams) as gateway:
        created = await gateway.post("/api/leads", json={"title": "etag"}, headers=rep.headers)
        assert created.status_code == 201, created.text
        # Latin-1 bytes in If-Match: the CRM refuses them as no ETag of its (never a 500 here).
        changed = await gateway.patch(
            f"/api/leads/{created.json()['id']}",
            json={"title": "changed"},
            headers={**rep.headers, "If-Match": b'"1\xb2"'},
        )
        assert changed.status_code == 422, changed.text
        assert [error["field"] for error in changed.json()["errors"]] == ["header.if-match"]


async def test_a_user_whose_id_begins_with_a_slash_is_reachable_through_the_gateway(
    gateway_client: GatewayClient, upstreams: dict[str, str], users: Users
) -> None:
    admin = users.make(Role.ADMIN, teams=["t1"])
    async with gateway_client(upstreams) as gateway:
        for user_id in ("/slashed", "a..b"):
            created = await gateway.post(
                "/api/users",
                json={"id": user_id, "email": f"u{len(user_id)}@example.com", "role": "rep"},
                headers=admin.headers,
            )
            assert created.status_code == 201, created.text
            found = await gateway.get(created.headers["location"], headers=admin.headers)
            assert found.status_code == 200, found.text
            assert found.json()["id"] == user_id


async def test_an_upload_goes_through_the_request_client_under_its_read_timeout(
    gateway_client: GatewayClient, users: Users
) -> None:
    """An upload (which ProxyFront hands on to the app) is a request, not an event stream: a
    service that does not answer it is a 504 after the read timeout, and its answer comes back
    as the service sent it, with nothing added however slowly it arrives."""
    upstream = FastAPI()
    release = threading.Event()  # the upstream runs on its own thread and event loop

    @upstream.post("/api/drive/records/lead/{record_id}/files")
    async def upload(record_id: str) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            await asyncio.to_thread(release.wait, 1)  # a pause longer than a heartbeat
            yield b'{"uploaded":true}'

        if record_id == "stalled":
            await asyncio.to_thread(release.wait, 30)  # answers once the test is done with it
        return StreamingResponse(body(), media_type="application/json")

    rep = users.make(Role.REP)
    with serve_in_thread(upstream) as url:
        try:
            async with gateway_client(
                {"DRIVE_URL": url}, read_timeout=3, sse_heartbeat_seconds=0.1
            ) as gateway:
                slow = await gateway.post(
                    "/api/drive/records/lead/slow/files", content=b"x", headers=rep.headers
                )
                assert (slow.status_code, slow.content) == (200, b'{"uploaded":true}')
                stalled = await gateway.post(
                    "/api/drive/records/lead/stalled/files", content=b"x", headers=rep.headers
                )
                assert stalled.status_code == 504
        finally:
            release.set()  # so the server's thread stops at once
