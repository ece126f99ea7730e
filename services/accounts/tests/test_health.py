"""Sync health as the accounts service serves it: each user their own, org admins their org's
users, nobody another org's; and a forced resync, refused to whoever may not ask for it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from accounts_service.repository import AccountsRepository
from pipedesk_common.auth import Role
from pipedesk_common.db import connect_raw, create_sessionmaker
from pipedesk_testkit.identities import ActingUser, Users

if TYPE_CHECKING:
    from conftest import Accounts

pytestmark = pytest.mark.asyncio

PROBLEM = "urn:pipedesk:problem:"
HEALTH = "/api/accounts/google/health"


async def published(
    accounts: Accounts, user: ActingUser, product: str, state: str, *, version: int = 1
) -> None:
    """What a Google service published about ``user``'s sync (as its event would store it)."""
    connection = await connect_raw(accounts.database_url)
    try:
        await connection.execute(
            "INSERT INTO accounts.sync_health (org_id, user_id, product, state, last_error_type,"
            " last_error_message, consecutive_failures, changed_at, version)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            user.principal.org_id,
            user.sub,
            product,
            state,
            PROBLEM + "google-unavailable" if state == "failing" else None,
            "Google answered 500 (backendError)" if state == "failing" else None,
            3 if state == "failing" else 0,
            datetime.now(UTC),
            version,
        )
    finally:
        await connection.close()


def by_user(answer: Any) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        item["user_id"]: {health["product"]: health for health in item["products"]}
        for item in answer.json()["items"]
    }


async def test_each_user_sees_their_own_sync_health_and_admins_their_orgs(
    accounts: Accounts, users: Users
) -> None:
    admin, rep, other = users.make(Role.ADMIN), users.make(Role.REP), users.make(Role.REP)
    outsider_admin = users.other_org().make(Role.ADMIN)
    accounts.outcome(await accounts.connect(rep, "calendar,tasks"))
    await published(accounts, rep, "calendar", "failing")
    await published(accounts, other, "tasks", "needs_reconnect")

    own = await accounts.client.get(HEALTH, headers=rep.headers)
    assert own.status_code == 200
    mine = by_user(own)
    assert list(mine) == [rep.sub]
    assert mine[rep.sub]["calendar"]["state"] == "failing"
    assert mine[rep.sub]["calendar"]["last_error"] == {
        "type": PROBLEM + "google-unavailable",
        "message": "Google answered 500 (backendError)",
    }
    # Connected, not synced yet: idle, never succeeded.
    assert mine[rep.sub]["tasks"]["state"] == "idle"
    assert mine[rep.sub]["tasks"]["changed_at"] is None

    for viewer in (rep, users.make(Role.MANAGER), users.make(Role.VIEWER)):
        refused = await accounts.client.get(
            HEALTH, params={"user_id": other.sub}, headers=viewer.headers
        )
        assert refused.status_code == 403, viewer.principal.role

    org = by_user(await accounts.client.get(HEALTH, headers=admin.headers))
    assert set(org) == {rep.sub, other.sub}
    failing = by_user(
        await accounts.client.get(HEALTH, params={"state": "failing"}, headers=admin.headers)
    )
    assert set(failing) == {rep.sub}
    first = await accounts.client.get(HEALTH, params={"limit": 1}, headers=admin.headers)
    rest = await accounts.client.get(
        HEALTH, params={"limit": 1, "cursor": first.json()["next_cursor"]}, headers=admin.headers
    )
    assert set(by_user(first)) | set(by_user(rest)) == {rep.sub, other.sub}
    assert rest.json()["next_cursor"] is None

    assert by_user(await accounts.client.get(HEALTH, headers=outsider_admin.headers)) == {}
    foreign = await accounts.client.get(
        HEALTH, params={"user_id": rep.sub}, headers=outsider_admin.headers
    )
    assert foreign.status_code == 404
    bad = await accounts.client.get(HEALTH, params={"state": "asleep"}, headers=admin.headers)
    assert bad.status_code == 422


async def test_a_newer_published_version_replaces_an_older_one_never_the_reverse(
    accounts: Accounts, users: Users
) -> None:
    rep = users.make(Role.REP)
    await published(accounts, rep, "tasks", "failing", version=5)
    engine = create_async_engine(accounts.database_url)
    try:
        sessions = create_sessionmaker(engine)
        for state, version in (("idle", 4), ("syncing", 6)):
            async with sessions.begin() as session:
                await AccountsRepository(session).store_health(
                    {
                        "org_id": rep.principal.org_id,
                        "user_id": rep.sub,
                        "product": "tasks",
                        "state": state,
                        "consecutive_failures": 0,
                        "changed_at": datetime.now(UTC),
                        "version": version,
                    }
                )
            health = by_user(await accounts.client.get(HEALTH, headers=rep.headers))
            assert health[rep.sub]["tasks"]["state"] == ("failing" if version < 5 else state)
    finally:
        await engine.dispose()


async def test_a_resync_is_refused_to_whoever_may_not_ask_for_it(
    accounts: Accounts, users: Users
) -> None:
    admin, rep, other = users.make(Role.ADMIN), users.make(Role.REP), users.make(Role.REP)
    outsider_admin = users.other_org().make(Role.ADMIN)
    accounts.outcome(await accounts.connect(rep, "tasks"))
    accounts.outcome(await accounts.connect(other, "tasks"))

    def resync(product: str, user: ActingUser, **params: str) -> Any:
        return accounts.client.post(
            f"{HEALTH}/{product}/resync", params=params, headers=user.headers
        )

    for caller in (rep, users.make(Role.MANAGER)):
        refused = await resync("tasks", caller, user_id=other.sub)
        assert refused.status_code == 403, caller.principal.role
    foreign = await resync("tasks", outsider_admin, user_id=rep.sub)
    assert foreign.status_code == 404
    unknown = await resync("fax", rep)
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["field"] == "path.product"
    not_granted = await resync("calendar", rep)
    assert not_granted.status_code == 409
    assert not_granted.json()["type"] == PROBLEM + "google-not-connected"
    stranger = await resync("tasks", users.make(Role.REP))
    assert stranger.status_code == 409
    assert stranger.json()["type"] == PROBLEM + "google-not-connected"
    # An admin may ask for their org's users; the tasks service is not running here.
    away = await resync("tasks", admin, user_id=other.sub)
    assert away.status_code == 503
