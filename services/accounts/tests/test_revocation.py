"""Google refusing the stored grant (``invalid_grant``): the connection is marked revoked, the
event is published, and nothing more is asked of Google until the user reconnects."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pipedesk_common.auth import Role, ServiceTokenIssuer
from pipedesk_common.events.accounts import GoogleRevoked
from pipedesk_common.google import (
    AccountsCredentials,
    GoogleApi,
    GoogleReconnectRequired,
    GoogleUser,
    scopes_for,
)
from pipedesk_testkit.identities import Users

if TYPE_CHECKING:
    from conftest import Accounts

pytestmark = pytest.mark.asyncio

TASKS = list(scopes_for(["tasks"]))


async def test_a_revoked_refresh_token_marks_the_connection_and_stops_google_calls(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    accounts.outcome(await accounts.connect(rep))
    await accounts.google.revoke(await accounts.refresh_token_of(rep.sub))  # removed in Google

    provider = AccountsCredentials(
        "http://accounts.test",
        http=accounts.client,
        service_tokens=ServiceTokenIssuer(
            "tasks", accounts.service_key("tasks"), clock=accounts.clock
        ),
        clock=accounts.clock,
    )
    tasks = GoogleApi(
        "tasks", "v1", credentials=provider, scopes=TASKS, root_url=accounts.google.root_url
    )
    user = GoogleUser(rep.principal.org_id, rep.sub, rep.principal.email)
    token_calls = len(await accounts.google.requests(api="oauth2.token"))
    # The stored access token was revoked with its refresh token: Google answers 401, the
    # provider asks for a refreshed one, and Google refuses the refresh token.
    with pytest.raises(GoogleReconnectRequired) as raised:
        await tasks.call(user, "tasklists.list", lambda client: client.tasklists().list())
    assert raised.value.errors is not None
    assert raised.value.errors[0].message == "connect Google for: tasks"
    assert len(await accounts.google.requests(api="oauth2.token")) == token_calls + 1

    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert status["status"] == "revoked"
    assert "invalid_grant" in status["last_error"]
    assert "reconnect Google" in status["last_error"]
    events = await accounts.events("accounts.google.revoked", rep.sub)
    assert len(events) == 1
    assert GoogleRevoked.model_validate(events[0]["data"]).reason.startswith("invalid_grant")
    stored = await accounts.rows(
        "SELECT refresh_token, access_token FROM accounts.google_connections WHERE user_id = $1",
        rep.sub,
    )
    assert stored == [{"refresh_token": None, "access_token": None}]

    # From now on: a clear problem at once, and not one more request to Google.
    google_calls = len(await accounts.google.requests())
    for force in (False, True):
        again = await accounts.token(rep, TASKS, force_refresh=force)
        assert again.status_code == 409
        assert again.json()["type"] == "urn:pipedesk:problem:google-reconnect-required"
        assert again.json()["title"] == "Reconnect your Google account"
    with pytest.raises(GoogleReconnectRequired):
        await tasks.call(user, "tasklists.list", lambda client: client.tasklists().list())
    assert len(await accounts.google.requests()) == google_calls
    assert len(await accounts.events("accounts.google.revoked", rep.sub)) == 1

    # Reconnecting brings the user back.
    assert accounts.outcome(await accounts.connect(rep))["google"] == ["connected"]
    lists = await tasks.call(user, "tasklists.list", lambda client: client.tasklists().list())
    assert lists["items"][0]["title"] == "My Tasks"
    assert len(await accounts.events("accounts.google.connected", rep.sub)) == 2


async def test_google_unreachable_during_a_refresh_changes_nothing(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    accounts.outcome(await accounts.connect(rep))
    accounts.client._transport.app.state.context.settings.google_root_url = (  # type: ignore[attr-defined]
        "http://127.0.0.1:9/"
    )
    try:
        answer = await accounts.token(rep, TASKS, force_refresh=True)
    finally:
        accounts.client._transport.app.state.context.settings.google_root_url = (  # type: ignore[attr-defined]
            accounts.google.root_url
        )
    assert answer.status_code == 503
    assert answer.json()["type"] == "urn:pipedesk:problem:google-unavailable"
    assert answer.headers["retry-after"] == "30"
    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert status["status"] == "connected"
    assert (await accounts.token(rep, TASKS, force_refresh=True)).status_code == 200
