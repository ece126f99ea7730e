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

