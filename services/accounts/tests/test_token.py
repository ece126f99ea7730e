"""``POST /internal/google/token``: service tokens only, cached, refreshed near expiry."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client import REGISTRY

from pipedesk_common.auth import Role
from pipedesk_common.google import scopes_for
from pipedesk_testkit.identities import Users

if TYPE_CHECKING:
    from conftest import Accounts

pytestmark = pytest.mark.asyncio

TASKS = list(scopes_for(["tasks"]))


async def test_an_end_user_token_is_refused_on_internal_routes(
    accounts: Accounts, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    body = {"org_id": admin.principal.org_id, "user_id": admin.sub, "scopes": TASKS}
    refused = await accounts.client.post("/internal/google/token", json=body, headers=admin.headers)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    anonymous = await accounts.client.post("/internal/google/token", json=body)
    assert anonymous.status_code == 401


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("stranger", ["gateway", "crm", "timeline", "automation", "accounts"])
async def test_only_the_product_services_get_a_google_token(
    accounts: Accounts, users: Users, stranger: str, caplog: pytest.LogCaptureFixture
) -> None:
    rep = users.make(Role.REP)
    await accounts.connect(rep)
    route = "/internal/google/token"
    before = _sample(
        "pipedesk_internal_calls_refused_total", caller=stranger, route=route, reason="caller"
    )
    with caplog.at_level(logging.WARNING, logger="pipedesk_common.internal"):
        refused = await accounts.token(rep, TASKS, caller=stranger)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == f"the {stranger} service may not call this route"
    assert "access_token" not in refused.text
    assert (
        _sample(
            "pipedesk_internal_calls_refused_total", caller=stranger, route=route, reason="caller"
        )
        == before + 1
    )
    refusals = [r for r in caplog.records if r.name == "pipedesk_common.internal"]
    assert [(r.message, getattr(r, "caller", None)) for r in refusals] == [
        ("internal call refused", stranger)
    ]


async def test_a_product_service_gets_only_its_own_products_scopes(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    await accounts.connect(rep, "tasks,calendar")
    calendar_scopes = list(scopes_for(["calendar"]))
    for caller, scopes in (("calendar", TASKS), ("tasks", calendar_scopes)):
        refused = await accounts.token(rep, scopes, caller=caller)
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"].startswith(f"the {caller} service may ask only for")
    mixed = await accounts.token(rep, [*calendar_scopes, *TASKS], caller="calendar")
    assert mixed.status_code == 403
    issued = _sample("pipedesk_google_tokens_issued_total", caller="calendar", via="oauth")
    own = await accounts.token(rep, calendar_scopes, caller="calendar")
    assert own.status_code == 200, own.text
    assert _sample("pipedesk_google_tokens_issued_total", caller="calendar", via="oauth") == (
        issued + 1
    )


async def test_a_service_token_is_refused_on_end_user_routes(
    accounts: Accounts,
) -> None:
    refused = await accounts.client.get("/api/accounts/google", headers=accounts.internal)
    assert refused.status_code == 401


async def test_the_stored_token_is_served_until_close_to_expiry_then_refreshed(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    assert (await accounts.connect(rep)).status_code == 302
    first = await accounts.token(rep, TASKS)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    assert first.json()["via"] == "oauth"
    token_calls = len(await accounts.google.requests(api="oauth2.token"))
    accounts.clock.advance(timedelta(minutes=40))
    cached = await accounts.token(rep, TASKS)
    assert cached.json()["access_token"] == first.json()["access_token"]
    assert len(await accounts.google.requests(api="oauth2.token")) == token_calls
    accounts.clock.advance(timedelta(minutes=11))  # 9 minutes left: within the 10-minute margin
    renewed = await accounts.token(rep, TASKS)
    assert renewed.status_code == 200
    assert renewed.json()["access_token"] != first.json()["access_token"]
    assert len(await accounts.google.requests(api="oauth2.token")) == token_calls + 1


async def test_an_expired_access_token_is_refreshed_transparently(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    await accounts.connect(rep)
    old = (await accounts.token(rep, TASKS)).json()["access_token"]
    await accounts.google.admin("POST", "/clock", json={"advance_seconds": 3700})
    try:
        accounts.clock.advance(timedelta(seconds=3700))
        async with httpx.AsyncClient() as http:
            lists = accounts.google.emulator_url + "/tasks/v1/users/@me/lists"
            expired = await http.get(lists, headers={"Authorization": f"Bearer {old}"})
            assert expired.status_code == 401
            answer = await accounts.token(rep, TASKS)
            assert answer.status_code == 200
            new = answer.json()["access_token"]
            fresh = await http.get(lists, headers={"Authorization": f"Bearer {new}"})
            assert fresh.status_code == 200
    finally:
        await accounts.google.admin("POST", "/clock", json={"advance_seconds": -3700})


async def test_force_refresh_gets_a_new_token_at_once(accounts: Accounts, users: Users) -> None:
    rep = users.make(Role.REP)
    await accounts.connect(rep)
    first = (await accounts.token(rep, TASKS)).json()["access_token"]
    forced = (await accounts.token(rep, TASKS, force_refresh=True)).json()["access_token"]
    assert forced != first
    assert (await accounts.token(rep, TASKS)).json()["access_token"] == forced


async def test_scopes_beyond_the_grant_ask_to_connect_those_products(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    await accounts.connect(rep, "tasks")
    answer = await accounts.token(rep, list(scopes_for(["calendar"])))
    assert answer.status_code == 409
    problem = answer.json()
    assert problem["type"] == "urn:pipedesk:problem:google-not-connected"
    assert problem["errors"] == [
        {"field": "google", "message": "connect Google for: calendar", "code": "scopes_not_granted"}
    ]


async def test_malformed_token_requests_name_the_field(accounts: Accounts, users: Users) -> None:
    rep = users.make(Role.REP)
    empty = await accounts.token(rep, [])
    assert empty.status_code == 422
    assert [error["field"] for error in empty.json()["errors"]] == ["body.scopes"]
    bad_email = await accounts.token(rep, TASKS, email="not-an-email")
    assert [error["field"] for error in bad_email.json()["errors"]] == ["body.email"]
