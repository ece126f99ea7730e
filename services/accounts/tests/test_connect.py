"""The connect flow: through the gateway against the emulator; state single-use, expiring and
unforgeable; PKCE; incremental consent; status; disconnect."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from accounts_service.app import build_app
from accounts_service.settings import AccountsSettings
from pipedesk_common.auth import Role
from pipedesk_common.events.accounts import GoogleConnected, GoogleDisconnected
from pipedesk_common.google import scopes_for
from pipedesk_gateway.app import build_app as build_gateway
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_testkit.clients import app_client
from pipedesk_testkit.google import FRONTEND_URL, GoogleStack
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import serve_in_thread

if TYPE_CHECKING:
    from conftest import Accounts

pytestmark = pytest.mark.asyncio


@pytest.fixture
def accounts_behind_gateway(
    service_env: dict[str, str], google: GoogleStack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An accounts service on a socket whose registered callback is the gateway's."""
    settings = AccountsSettings(
        **service_env,
        google_redirect_uri="http://gateway/api/accounts/google/callback",
        frontend_url=FRONTEND_URL,
    )
    with serve_in_thread(build_app(settings)) as url:
        monkeypatch.setenv("ACCOUNTS_URL", url)
        yield url


async def test_the_browser_consents_at_its_own_address_of_google_while_the_service_uses_its(
    service_env: dict[str, str], accounts: Accounts, google: GoogleStack, users: Users
) -> None:
    """As in compose: the browser reaches the emulator on a published port of the host, the
    accounts service at its address on the container network."""
    browser_side = "http://localhost:18090"
    settings = AccountsSettings(
        **service_env,
        google_auth_url=f"{browser_side}/o/oauth2/v2/auth",
        google_redirect_uri="http://gateway/api/accounts/google/callback",
        frontend_url=FRONTEND_URL,
    )
    rep = users.make(Role.REP)
    async with app_client(build_app(settings), "http://accounts") as service:
        async with httpx.AsyncClient() as browser:
            start = await service.get(
                "/api/accounts/google/connect", params={"products": "tasks"}, headers=rep.headers
            )
            authorization_url = start.json()["authorization_url"]
            assert authorization_url.startswith(f"{browser_side}/o/oauth2/v2/auth?")
            # The host's published port leads to the same emulator the service reaches.
            consent = await browser.get(
                authorization_url.replace(browser_side, google.root_url.rstrip("/"))
            )
        back = urlparse(consent.headers["location"])
        callback = await service.get(back.path + "?" + back.query)
        # Connected: the code was exchanged at the service's address of the emulator (nothing
        # listens at the browser's).
        assert accounts.outcome(callback) == {"google": ["connected"], "products": ["tasks"]}


async def test_connecting_through_the_gateway_against_the_emulator(
    accounts_behind_gateway: str,
    service_env: dict[str, str],
    accounts: Accounts,
    google: GoogleStack,
    users: Users,
) -> None:
    rep = users.make(Role.REP)
    gateway_app = build_gateway(GatewaySettings(**service_env))
    async with app_client(gateway_app, "http://gateway") as gateway, httpx.AsyncClient() as browser:
        start = await gateway.get(
            "/api/accounts/google/connect",
            params={"products": "calendar,tasks"},
            headers=rep.headers,
        )
        assert start.status_code == 200, start.text
        url = urlparse(start.json()["authorization_url"])
        query = {key: value[0] for key, value in parse_qs(url.query).items()}
        assert url.path == "/o/oauth2/v2/auth"
        assert query["code_challenge_method"] == "S256"
        assert len(query["code_challenge"]) == 43  # base64url of a SHA-256 digest
        assert query["redirect_uri"] == "http://gateway/api/accounts/google/callback"
        assert query["login_hint"] == rep.principal.email
        assert query["access_type"] == "offline"
        assert query["include_granted_scopes"] == "true"
        assert set(query["scope"].split()) == {
            "openid",
            "email",
            *scopes_for(["calendar", "tasks"]),
        }

        consent = await browser.get(start.json()["authorization_url"])
        assert consent.status_code == 302
        back = urlparse(consent.headers["location"])
        assert back.netloc == "gateway"
        # The callback carries no bearer token: the gateway lets it through to the service.
        callback = await gateway.get(back.path + "?" + back.query)
        assert accounts.outcome(callback) == {
            "google": ["connected"],
            "products": ["calendar,tasks"],
        }
        assert callback.headers["cache-control"] == "no-store"

        status = (await gateway.get("/api/accounts/google", headers=rep.headers)).json()
        assert status["status"] == "connected"
        assert status["via"] == "oauth"
        assert status["google_email"] == rep.principal.email
        assert {name for name, product in status["products"].items() if product["granted"]} == {
            "calendar",
            "tasks",
        }
        # The same callback again: the state was single-use.
        replayed = await gateway.get(back.path + "?" + back.query)
        assert replayed.status_code == 400
        assert replayed.json()["type"] == "urn:pipedesk:problem:oauth-state-invalid"
        without_token = await gateway.get("/api/accounts/google")
        assert without_token.status_code == 401

    exchanges = await google.requests(user=rep.principal.email, api="oauth2.token")
    # this user's code was exchanged once (with the PKCE verifier the emulator checked)
    assert [call["status"] for call in exchanges] == [200]
    connected = await accounts.events("accounts.google.connected", rep.sub)
    assert len(connected) == 1
    data = GoogleConnected.model_validate(connected[0]["data"])
    assert data.products == ["calendar", "tasks"]
    assert connected[0]["orgid"] == rep.principal.org_id


async def test_replayed_forged_and_expired_states_are_refused_and_store_nothing(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    callback = urlparse(await accounts.consent(rep))
    params = parse_qs(callback.query)
    code, state = params["code"][0], params["state"][0]
    forged = await accounts.client.get(
        callback.path, params={"code": code, "state": state[:-2] + "xx"}
    )
    missing = await accounts.client.get(callback.path, params={"code": code})
    for refused in (forged, missing):
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"][0]["field"] == "query.state"
    assert code not in forged.text
    # The genuine state still works once: the forgeries did not consume it.
    assert accounts.outcome(await accounts.client.get(callback.path + "?" + callback.query))
    replay = await accounts.client.get(callback.path + "?" + callback.query)
    assert replay.status_code == 400

    other = users.make(Role.REP)
    late = urlparse(await accounts.consent(other))
    accounts.clock.advance(timedelta(minutes=11))
    expired = await accounts.client.get(late.path + "?" + late.query)
    assert expired.status_code == 400
    assert "expired" in expired.json()["detail"]
    stored = await accounts.rows(
        "SELECT user_id FROM accounts.google_connections WHERE org_id = $1",
        rep.principal.org_id,
    )
    assert stored == [{"user_id": rep.sub}]  # only the genuine flow stored a connection


async def test_a_code_presented_with_another_flows_state_fails_pkce_and_stores_nothing(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    first = parse_qs(urlparse(await accounts.consent(rep)).query)
    second = parse_qs(urlparse(await accounts.consent(rep)).query)
    # Flow 1's code with flow 2's state: the service sends flow 2's verifier, Google refuses.
    crossed = await accounts.client.get(
        accounts.callback_path,
        params={"code": first["code"][0], "state": second["state"][0]},
    )
    assert accounts.outcome(crossed) == {"google": ["error"], "reason": ["invalid_grant"]}
    stored = await accounts.rows(
        "SELECT 1 FROM accounts.google_connections WHERE org_id = $1",
        rep.principal.org_id,
    )
    assert stored == []


async def test_google_denying_consent_sends_the_browser_back_with_the_reason(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    state = parse_qs(urlparse(await accounts.consent(rep)).query)["state"][0]
    denied = await accounts.client.get(
        accounts.callback_path, params={"state": state, "error": "access_denied"}
    )
    assert accounts.outcome(denied) == {"google": ["error"], "reason": ["access_denied"]}
    status = await accounts.client.get("/api/accounts/google", headers=rep.headers)
    assert status.json()["status"] == "not_connected"


async def test_unknown_products_are_refused_naming_the_field(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    for products in ("calendar,fax", ",", ""):
        refused = await accounts.client.get(
            "/api/accounts/google/connect", params={"products": products}, headers=rep.headers
        )
        assert refused.status_code == 422, products
        assert refused.json()["errors"][0]["field"] == "query.products"


async def test_the_document_says_which_product_lists_are_accepted(
    accounts: Accounts, users: Users
) -> None:
    document = (await accounts.client.get("/openapi.json")).json()
    (products,) = document["paths"]["/api/accounts/google/connect"]["get"]["parameters"]
    pattern = re.compile(products["schema"]["pattern"])
    for accepted in ("calendar", "tasks, drive", "gmail,calendar,"):
        assert pattern.match(accepted), accepted
    for refused in ("calendar,fax", ",", "", "products"):
        assert not pattern.match(refused), refused
    rep = users.make(Role.REP)
    started = await accounts.client.get(
        "/api/accounts/google/connect", params={"products": "tasks, drive"}, headers=rep.headers
    )
    assert started.status_code == 200, started.text


async def test_incremental_consent_adds_products_to_the_connection(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    accounts.outcome(await accounts.connect(rep, "tasks"))
    outcome = accounts.outcome(await accounts.connect(rep, "calendar"))
    assert outcome["products"] == ["calendar,tasks"]
    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert status["products"]["tasks"]["granted"]
    assert status["products"]["calendar"]["granted"]
    for product in ("tasks", "calendar"):
        answer = await accounts.token(rep, list(scopes_for([product])))
        assert answer.status_code == 200, answer.text


async def test_disconnecting_revokes_at_google_and_forgets(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    accounts.outcome(await accounts.connect(rep))
    token = (await accounts.token(rep, list(scopes_for(["tasks"])))).json()["access_token"]
    gone = await accounts.client.delete("/api/accounts/google", headers=rep.headers)
    assert gone.status_code == 204
    async with httpx.AsyncClient() as http:
        lists = accounts.google.emulator_url + "/tasks/v1/users/@me/lists"
        refused = await http.get(lists, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401  # revoking the refresh token took its access tokens along
    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert status["status"] == "not_connected"
    again = await accounts.client.delete("/api/accounts/google", headers=rep.headers)
    assert again.status_code == 404
    events = await accounts.events("accounts.google.disconnected", rep.sub)
    assert [GoogleDisconnected.model_validate(e["data"]).products for e in events] == [["tasks"]]
    assert events[0]["actorid"] == rep.sub
    after = await accounts.token(rep, list(scopes_for(["tasks"])))
    assert after.json()["type"] == "urn:pipedesk:problem:google-not-connected"


async def test_a_product_disconnected_alone_stays_out_when_another_is_connected(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    accounts.outcome(await accounts.connect(rep, "tasks"))
    accounts.outcome(await accounts.connect(rep, "calendar"))
    gone = await accounts.client.delete("/api/accounts/google/products/tasks", headers=rep.headers)
    assert gone.status_code == 204, gone.text
    events = await accounts.events("accounts.google.disconnected", rep.sub)
    disconnected = [GoogleDisconnected.model_validate(e["data"]) for e in events]
    assert [(e.products, e.connection_ended) for e in disconnected] == [(["tasks"], False)]
    assert disconnected[0].scopes == list(scopes_for(["tasks"]))
    refused = await accounts.token(rep, list(scopes_for(["tasks"])))
    assert refused.status_code == 409
    assert (await accounts.token(rep, list(scopes_for(["calendar"])))).status_code == 200

    # Google answers the whole grant, tasks included: connecting gmail does not bring tasks back.
    outcome = accounts.outcome(await accounts.connect(rep, "gmail"))
    assert outcome["products"] == ["calendar,gmail"]
    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert status["products"]["tasks"]["granted"] is False
    assert (await accounts.token(rep, list(scopes_for(["tasks"])))).status_code == 409
    # Connected again itself, it is back.
    accounts.outcome(await accounts.connect(rep, "tasks"))
    assert (await accounts.token(rep, list(scopes_for(["tasks"])))).status_code == 200
