"""Who may read and change a connection: its user, and their org's admins; nobody else."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.attacks import ATTACKS, forged_tokens
from pipedesk_testkit.identities import Identity, Users

if TYPE_CHECKING:
    from conftest import Accounts

pytestmark = pytest.mark.asyncio

ROUTES = (
    ("GET", "/api/accounts/google"),
    ("DELETE", "/api/accounts/google"),
    ("GET", "/api/accounts/google/connect?products=calendar"),
    ("GET", "/api/accounts/google/users"),
    ("GET", "/api/accounts/google/users/someone"),
    ("DELETE", "/api/accounts/google/users/someone"),
    ("GET", "/api/accounts/google/delegation"),
    ("PUT", "/api/accounts/google/delegation"),
    ("DELETE", "/api/accounts/google/delegation"),
)


async def test_every_route_but_the_callback_requires_a_valid_token(
    accounts: Accounts, identity: Identity
) -> None:
    attacks = forged_tokens(identity)
    for method, path in ROUTES:
        missing = await accounts.client.request(method, path)
        assert missing.status_code == 401, (method, path)
        for name in ATTACKS:
            headers = {"Authorization": f"Bearer {attacks[name]()}"}
            forged = await accounts.client.request(method, path, headers=headers)
            assert forged.status_code == 401, (method, path, name)


async def test_an_org_admin_reads_and_disconnects_their_users_connections(
    accounts: Accounts, users: Users
) -> None:
    admin, rep = users.make(Role.ADMIN), users.make(Role.REP)
    accounts.outcome(await accounts.connect(rep))
    seen = await accounts.client.get(f"/api/accounts/google/users/{rep.sub}", headers=admin.headers)
    assert seen.status_code == 200
    assert seen.json()["status"] == "connected"
    assert "refresh_token" not in seen.text
    gone = await accounts.client.delete(
        f"/api/accounts/google/users/{rep.sub}", headers=admin.headers
    )
    assert gone.status_code == 204
    events = await accounts.events("accounts.google.disconnected", rep.sub)
    assert [event["actorid"] for event in events] == [admin.sub]
    status = await accounts.client.get("/api/accounts/google", headers=rep.headers)
    assert status.json()["status"] == "not_connected"


async def test_another_orgs_admin_can_neither_read_nor_change_a_connection(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    accounts.outcome(await accounts.connect(rep))
    stranger = users.other_org().make(Role.ADMIN)
    path = f"/api/accounts/google/users/{rep.sub}"
    assert (await accounts.client.get(path, headers=stranger.headers)).status_code == 404
    assert (await accounts.client.delete(path, headers=stranger.headers)).status_code == 404
    # Their own "status" and delegation concern their own org only.
    own = await accounts.client.get("/api/accounts/google", headers=stranger.headers)
    assert own.json()["status"] == "not_connected"
    delegation = await accounts.client.delete(
        "/api/accounts/google/delegation", headers=stranger.headers
    )
    assert delegation.status_code == 404
    still = await accounts.client.get("/api/accounts/google", headers=rep.headers)
    assert still.json()["status"] == "connected"
    assert await accounts.events("accounts.google.disconnected", rep.sub) == []


@pytest.mark.parametrize("role", [Role.MANAGER, Role.REP, Role.VIEWER])
async def test_only_admins_manage_other_users_connections_and_delegation(
    accounts: Accounts, users: Users, role: Role
) -> None:
    rep = users.make(Role.REP)
    accounts.outcome(await accounts.connect(rep))
    caller = users.make(role)
    for method, path in (
        ("GET", "/api/accounts/google/users"),
        ("GET", f"/api/accounts/google/users/{rep.sub}"),
        ("DELETE", f"/api/accounts/google/users/{rep.sub}"),
        ("GET", "/api/accounts/google/delegation"),
        ("DELETE", "/api/accounts/google/delegation"),
    ):
        refused = await accounts.client.request(method, path, headers=caller.headers)
        assert refused.status_code == 403, (method, path)
        assert refused.headers["content-type"] == "application/problem+json"
    key_file = {
        "type": "service_account",
        "client_email": "sa@project.iam.gserviceaccount.com",
        "private_key_id": "k1",
        "private_key": "x" * 200,
    }
    put = await accounts.client.put(
        "/api/accounts/google/delegation",
        json={"domain": "example.com", "service_account_key": key_file},
        headers=caller.headers,
    )
    assert put.status_code == 403
    still = await accounts.client.get("/api/accounts/google", headers=rep.headers)
    assert still.json()["status"] == "connected"


async def test_every_user_manages_their_own_connection(accounts: Accounts, users: Users) -> None:
    viewer = users.make(Role.VIEWER)
    assert accounts.outcome(await accounts.connect(viewer))["google"] == ["connected"]
    own = await accounts.client.get("/api/accounts/google", headers=viewer.headers)
    assert own.json()["google_email"] == viewer.principal.email
    assert (
        await accounts.client.delete("/api/accounts/google", headers=viewer.headers)
    ).status_code == 204


async def test_an_admin_lists_their_orgs_connections_page_by_page(
    accounts: Accounts, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    reps = [users.make(Role.REP) for _ in range(3)]
    for rep in reps:
        accounts.outcome(await accounts.connect(rep))
    outsider = users.other_org().make(Role.REP)
    accounts.outcome(await accounts.connect(outsider))
    await accounts.google.revoke(await accounts.refresh_token_of(reps[1].sub))
    revoked = await accounts.token(
        reps[1], ["https://www.googleapis.com/auth/tasks"], force_refresh=True
    )
    assert revoked.status_code == 409

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await accounts.client.get(
            "/api/accounts/google/users", params=params, headers=admin.headers
        )
        assert page.status_code == 200, page.text
        seen += [item["user_id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [rep.sub for rep in reps]  # oldest first, none of the other org's
    only_revoked = await accounts.client.get(
        "/api/accounts/google/users", params={"status": "revoked"}, headers=admin.headers
    )
    assert [item["user_id"] for item in only_revoked.json()["items"]] == [reps[1].sub]
    stranger = users.other_org().make(Role.ADMIN)
    theirs = await accounts.client.get("/api/accounts/google/users", headers=stranger.headers)
    assert theirs.json() == {"items": [], "next_cursor": None}
    first = await accounts.client.get(
        "/api/accounts/google/users", params={"limit": 1}, headers=admin.headers
    )
    replayed = await accounts.client.get(
        "/api/accounts/google/users",
        params={"status": "connected", "cursor": first.json()["next_cursor"]},
        headers=admin.headers,
    )
    assert replayed.status_code == 400
    assert replayed.json()["errors"][0]["field"] == "query.cursor"
