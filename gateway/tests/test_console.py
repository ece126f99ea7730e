"""The gateway's own pages: the console at /app (static, strict CSP, sign-in through the
development identity provider, refused in production), the API docs served offline, and CORS for
the frontends' origins. The browser tests in tests/browser drive the same pages in Chromium."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from uuid import uuid4

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from pipedesk_common.auth import Role
from pipedesk_gateway.app import CORS_EXPOSED_HEADERS, CORS_REQUEST_HEADERS, build_app
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_testkit.clients import app_client
from pipedesk_testkit.identities import Identity, Users
from pipedesk_testkit.servers import free_port

if TYPE_CHECKING:
    from conftest import GatewayClient

pytestmark = pytest.mark.asyncio

FRONTENDS = ["http://localhost:3000", "https://app.pipedesk.example"]
PRODUCTION = {
    "ENVIRONMENT": "production",
    "AUTH_JWKS_URL": "https://idp.example/jwks.json",
    "SERVICE_JWKS_URL": "https://idp.example/service-jwks.json",
    "CURSOR_SECRET": "a-production-cursor-secret-of-enough-length",
    "service_key": ECKey.generate_key("P-256", private=True).as_pem(private=True).decode(),
}


async def test_the_console_is_static_pages_under_a_strict_csp(
    gateway_client: GatewayClient,
    identity: Identity,
) -> None:
    async with gateway_client({"IDENTITY_URL": identity.url}) as client:
        assert (await client.get("/app")).headers["location"] == "/app/"
        page = await client.get("/app/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "connect-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        # no inline script or style anywhere: every script is a file of the console
        scripts = re.findall(r"<script[^>]*>", page.text)
        assert scripts == ['<script type="module" src="/app/js/main.js">']
        assert " style=" not in page.text
        assert re.search(r"\son[a-z]+=", page.text) is None  # no inline event handler

        main = await client.get("/app/js/main.js")
        assert main.status_code == 200
        assert main.headers["content-type"] == "text/javascript; charset=utf-8"
        assert main.headers["content-security-policy"] == csp
        for imported in re.findall(r'from "\./([^"]+)"', main.text):
            assert (await client.get(f"/app/js/{imported}")).status_code == 200, imported
        again = await client.get("/app/js/main.js", headers={"If-None-Match": main.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""

        for path in (
            "/app/js/nothing.js",
            "/app/%2e%2e/%2e%2e/pyproject.toml",
            "/app/js/../../settings.py",
            "/app/console.py",
        ):
            missing = await client.get(path)
            assert missing.status_code == 404, path
            assert missing.headers["content-type"] == "application/problem+json"
        assert (await client.post("/app/js/main.js")).status_code == 404


async def test_signing_in_as_a_demo_user_gives_a_token_that_sees_only_the_demo_org(
    gateway_client: GatewayClient,
    identity: Identity,
    upstreams: dict[str, str],
    users: Users,
) -> None:
    urls = {**upstreams, "IDENTITY_URL": identity.url}
    async with gateway_client(urls) as client:
        listed = await client.get("/app/session/users")
        assert listed.status_code == 200
        assert listed.headers["cache-control"] == "no-store"
        assert listed.json()["org_id"] == "demo"
        assert {user["sub"]: user["role"] for user in listed.json()["users"]} == {
            "ada": "admin",
            "max": "manager",
            "rita": "rep",
            "ravi": "rep",
            "vera": "viewer",
        }

        session = await client.post("/app/session", json={"user": "rita"})
        assert session.status_code == 200, session.text
        assert session.headers["cache-control"] == "no-store"
        token = session.json()["access_token"]
        async with httpx.AsyncClient() as http:
            keys = KeySet.import_key_set((await http.get(identity.jwks_url)).json())
        claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
        assert (claims["sub"], claims["org_id"], claims["role"], claims["team_ids"]) == (
            "rita",
            "demo",
            "rep",
            ["sales-emea"],
        )
        rita = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/leads", headers=rita)).status_code == 200

        # a demo token reaches nothing of another org
        outsider = users.make(Role.ADMIN)
        lead = await client.post("/api/leads", json={"title": "not demo"}, headers=outsider.headers)
        assert lead.status_code == 201
        other_org_lead = await client.get(f"/api/leads/{lead.json()['id']}", headers=rita)
        assert other_org_lead.status_code == 404

        unknown = await client.post("/app/session", json={"user": "mallory"})
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
        assert "rita" in unknown.json()["detail"]
        for body in ({"user": "Robert'); DROP TABLE"}, {"user": ""}, {}, {"user": "x" * 65}):
            refused = await client.post("/app/session", json=body)
            assert refused.status_code == 422, body
            assert [error["field"] for error in refused.json()["errors"]] == ["body.user"]


async def test_without_the_identity_provider_sign_in_is_a_502_naming_it(
    gateway_client: GatewayClient,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with gateway_client({"IDENTITY_URL": nowhere}) as client:
        for answer in (
            await client.get("/app/session/users"),
            await client.post("/app/session", json={"user": "rita"}),
        ):
            assert answer.status_code == 502
            assert "development identity provider" in answer.json()["detail"]
            assert nowhere not in answer.text  # no internal address in an answer
        assert (await client.get("/app/")).status_code == 200  # the pages themselves are static


async def test_production_refuses_the_console_and_serves_none_by_default(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, identity: Identity
) -> None:
    with pytest.raises(ValueError, match="GATEWAY_CONSOLE is refused in production"):
        GatewaySettings(**{**service_env, **PRODUCTION}, console=True)
    assert GatewaySettings(**{**service_env, **PRODUCTION}).console_enabled is False
    assert GatewaySettings(**service_env).console_enabled is True
    monkeypatch.setenv("GATEWAY_CONSOLE", "false")
    assert GatewaySettings(**service_env).console_enabled is False
    monkeypatch.delenv("GATEWAY_CONSOLE")
    monkeypatch.setenv("IDENTITY_URL", identity.url)
    production = build_app(GatewaySettings(**{**service_env, **PRODUCTION}))
    async with app_client(production, "http://gateway") as client:
        for method, path in (
            ("GET", "/app/"),
            ("GET", "/app/js/main.js"),
            ("POST", "/app/session"),
        ):
            answer = await client.request(method, path, json={"user": "ada"})
            assert answer.status_code == 404, path
            assert "access_token" not in answer.text


async def test_the_api_docs_need_nothing_beyond_the_gateway(
    gateway_client: GatewayClient,
    upstreams: dict[str, str],
) -> None:
    async with gateway_client(upstreams) as client:
        for path in ("/docs", "/redoc"):
            page = await client.get(path)
            assert page.status_code == 200
            assert "script-src 'self';" in page.headers["content-security-policy"]
            sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert sources, path
            for source in sources:
                assert source.startswith("/docs/assets/"), source
                asset = await client.get(source)
                assert asset.status_code == 200, source
            assert re.findall(r"<script>", page.text) == []
        assert (await client.get("/docs/assets/swagger-ui-bundle.js")).headers[
            "content-type"
        ] == "text/javascript; charset=utf-8"
        assert (await client.get("/docs/assets/../openapi.json")).status_code == 404
        assert (await client.get("/docs/assets/core.py")).status_code == 404


async def test_cors_allows_every_header_the_api_takes_and_exposes_what_pages_read(
    gateway_client: GatewayClient,
    upstreams: dict[str, str],
    users: Users,
) -> None:
    rep = users.make(Role.REP)
    origins = ",".join(FRONTENDS)
    async with gateway_client(upstreams, FRONTEND_ORIGINS=origins) as client:
        document = (await client.get("/openapi.json")).json()
        taken = {
            parameter["name"].lower()
            for operations in document["paths"].values()
            for operation in operations.values()
            for parameter in operation.get("parameters", [])
            if parameter["in"] == "header"
        }
        assert {"if-none-match", "last-event-id", "if-match"} <= taken
        allowed = {header.lower() for header in CORS_REQUEST_HEADERS}
        assert taken <= allowed, taken - allowed
        for origin in FRONTENDS:
            for header in sorted(allowed):
                preflight = await client.options(
                    f"/api/timeline/lead/{uuid4()}",
                    headers={
                        "Origin": origin,
                        "Access-Control-Request-Method": "GET",
                        "Access-Control-Request-Headers": f"authorization,{header}",
                    },
                )
                assert preflight.status_code == 200, (origin, header, preflight.text)
                assert preflight.headers["access-control-allow-origin"] == origin

        lead = await client.post(
            "/api/leads",
            json={"title": "cors"},
            headers={**rep.headers, "Origin": FRONTENDS[1]},
        )
        assert lead.headers["access-control-allow-origin"] == FRONTENDS[1]
        exposed = {
            header.strip().lower()
            for header in lead.headers["access-control-expose-headers"].split(",")
        }
        assert {"etag", "timeline-version", "retry-after", "location", "x-request-id"} <= exposed
        assert exposed == {header.lower() for header in CORS_EXPOSED_HEADERS}

        foreign = await client.options(
            "/api/leads",
            headers={
                "Origin": "http://localhost:3001",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert "access-control-allow-origin" not in foreign.headers
        unknown_header = await client.options(
            "/api/leads",
            headers={
                "Origin": FRONTENDS[0],
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-not-an-api-header",
            },
        )
        assert unknown_header.status_code == 400


@pytest.mark.parametrize(
    "origins",
    ["*", "http://localhost:3000/", "https://app.example.com/path", "app.example.com", "HTTP://X"],
)
async def test_frontend_origins_must_be_plain_origins(
    service_env: dict[str, str], origins: str
) -> None:
    with pytest.raises(ValueError, match="is not a browser origin"):
        GatewaySettings(**service_env, FRONTEND_ORIGINS=origins)
