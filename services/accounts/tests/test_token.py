"""``POST /internal/google/token``: service tokens only, cached, refreshed near expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import pytest

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
