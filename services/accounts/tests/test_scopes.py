"""Scopes as Google grants them: what each product asks for, and connections granted other
(older, broader) scopes than today's."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users

if TYPE_CHECKING:
    from conftest import Accounts

pytestmark = pytest.mark.asyncio

AUTH = "https://www.googleapis.com/auth/"
CALENDAR_TODAY = [
    AUTH + "calendar.events",
    AUTH + "calendar.calendarlist.readonly",
    AUTH + "calendar.freebusy",
]


async def connect_asking(
    accounts: Accounts, user: ActingUser, scopes: list[str]
) -> dict[str, list[str]]:
    """Connect Calendar through the service's flow, with the consent page asked for ``scopes``
    instead: a connection made when PipeDesk asked for other scopes."""
    start = await accounts.client.get(
        "/api/accounts/google/connect", params={"products": "calendar"}, headers=user.headers
    )
    url = urlparse(start.json()["authorization_url"])
    query = {key: value[0] for key, value in parse_qs(url.query).items()}
    query["scope"] = " ".join(["openid", "email", *scopes])
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(url._replace(query=urlencode(query)).geturl())
    back = urlparse(consent.headers["location"])
    return accounts.outcome(await accounts.client.get(back.path + "?" + back.query))


async def test_calendar_asks_for_the_scopes_its_methods_accept(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    start = await accounts.client.get(
        "/api/accounts/google/connect", params={"products": "calendar"}, headers=rep.headers
    )
    asked = parse_qs(urlparse(start.json()["authorization_url"]).query)["scope"][0].split()
    assert sorted(asked) == sorted(["openid", "email", *CALENDAR_TODAY])


@pytest.mark.parametrize(
    "granted",
    [
        pytest.param([AUTH + "calendar.events", AUTH + "calendar.readonly"], id="earlier-scopes"),
        pytest.param([AUTH + "calendar"], id="full-calendar"),
    ],
)
async def test_a_connection_granted_broader_scopes_still_counts(
    accounts: Accounts, users: Users, granted: list[str]
) -> None:
    rep = users.make(Role.REP)
    outcome = await connect_asking(accounts, rep, granted)
    assert outcome == {"google": ["connected"], "products": ["calendar"]}
    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert status["products"]["calendar"]["granted"] is True
    assert set(granted) <= set(status["scopes"])

    answer = await accounts.token(rep, CALENDAR_TODAY)
    assert answer.status_code == 200, answer.text
    bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    root = accounts.google.emulator_url + "/calendar/v3"
    window = {"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-01-02T00:00:00Z", "items": []}
    async with httpx.AsyncClient() as http:
        listed = await http.get(root + "/users/me/calendarList", headers=bearer)
        busy = await http.post(root + "/freeBusy", json=window, headers=bearer)
    assert (listed.status_code, busy.status_code) == (200, 200)


async def test_a_narrower_grant_than_a_products_scopes_does_not_count(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    await connect_asking(accounts, rep, [AUTH + "calendar.events", AUTH + "calendar.events.owned"])
    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert status["products"]["calendar"]["granted"] is False
    refused = await accounts.token(rep, CALENDAR_TODAY)
    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:pipedesk:problem:google-not-connected"


async def test_a_product_google_did_not_wholly_grant_needs_reconnect_until_connected_again(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    email = rep.principal.email
    # On Google's consent screen the user unticks free/busy (granular consent).
    declined = {"declined_scopes": [AUTH + "calendar.freebusy"]}
    await accounts.google.admin("PUT", f"/users/{email}/consent", json=declined)
    outcome = accounts.outcome(await accounts.connect(rep, "calendar,tasks"))
    assert outcome == {
        "google": ["connected"],
        "products": ["tasks"],
        "needs_reconnect": ["calendar"],
    }
    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert AUTH + "calendar.freebusy" not in status["scopes"]  # what Google granted, not asked
    calendar = status["products"]["calendar"]
    assert (calendar["granted"], calendar["state"]) == (False, "needs_reconnect")
    assert calendar["missing_scopes"] == [AUTH + "calendar.freebusy"]
    assert "calendar.freebusy" in calendar["problem"]
    assert status["products"]["tasks"]["state"] == "granted"
    assert status["products"]["drive"]["state"] == "not_requested"

    health = await accounts.client.get("/api/accounts/google/health", headers=rep.headers)
    [account] = health.json()["items"]
    by_product = {item["product"]: item for item in account["products"]}
    assert by_product["calendar"]["state"] == "needs_reconnect"
    assert by_product["calendar"]["last_error"]["type"] == (
        "urn:pipedesk:problem:google-not-connected"
    )
    assert "calendar.freebusy" in by_product["calendar"]["last_error"]["message"]
    assert by_product["tasks"]["state"] == "idle"
    # A service asking for Calendar's scopes is told at once, before any call to Google.
    refused = await accounts.token(rep, CALENDAR_TODAY)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["message"] == "connect Google for: calendar"

    # The user connects Calendar again and this time allows everything.
    await accounts.google.admin("PUT", f"/users/{email}/consent", json={"declined_scopes": []})
    again = accounts.outcome(await accounts.connect(rep, "calendar"))
    assert again == {"google": ["connected"], "products": ["calendar,tasks"]}
    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert status["products"]["calendar"]["state"] == "granted"
    # The refresh token now stored carries the new grant: its tokens reach free/busy.
    answer = await accounts.token(rep, CALENDAR_TODAY, force_refresh=True)
    assert answer.status_code == 200, answer.text
    window = {"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-01-02T00:00:00Z", "items": []}
    async with httpx.AsyncClient() as http:
        busy = await http.post(
            accounts.google.emulator_url + "/calendar/v3/freeBusy",
            json=window,
            headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
        )
    assert busy.status_code == 200


async def test_the_consent_asks_for_offline_access_with_the_consent_screen(
    accounts: Accounts, users: Users
) -> None:
    """Google gives a refresh token only for offline access, and once the user holds one, a
    new one (carrying newly added scopes) only when the consent screen is shown again."""
    rep = users.make(Role.REP)
    start = await accounts.client.get(
        "/api/accounts/google/connect", params={"products": "tasks"}, headers=rep.headers
    )
    query = parse_qs(urlparse(start.json()["authorization_url"]).query)
    assert (query["access_type"], query["prompt"]) == (["offline"], ["consent"])
    assert query["include_granted_scopes"] == ["true"]
    accounts.outcome(await accounts.connect(rep, "tasks"))
    first = await accounts.refresh_token_of(rep.sub)
    accounts.outcome(await accounts.connect(rep, "calendar"))
    assert await accounts.refresh_token_of(rep.sub) != first
