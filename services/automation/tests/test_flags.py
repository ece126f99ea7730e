"""Feature flags through OpenFeature: a global setting (operators, through the internal route),
an org's and a team's (its admins); the narrowest that matches wins, each evaluation reads the
table, and no org sees or changes another's."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from joserfc.jwk import ECKey
from openfeature.flag_evaluation import Reason
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from automation_service.app import build_app
from automation_service.flags import SLA_WORKER, DatabaseFlagProvider, Flags, context_for
from automation_service.settings import AutomationSettings
from pipedesk_common.auth import Role, ServiceTokenIssuer
from pipedesk_common.clock import SystemClock
from pipedesk_common.keys import dev_service_key_path
from pipedesk_testkit.identities import Identity, Users
from pipedesk_testkit.plugin import OpenService

pytestmark = pytest.mark.asyncio
FLAG = f"/api/automation/flags/{SLA_WORKER}"


def service_headers(identity: Identity, service: str) -> dict[str, str]:
    key = ECKey.import_key(dev_service_key_path(identity.key_dir, service).read_bytes())
    issuer = ServiceTokenIssuer(service, key, clock=SystemClock())
    return {"Authorization": f"Bearer {issuer.token_for('automation')}"}


@pytest_asyncio.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(database_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def test_the_narrowest_setting_wins_and_each_org_manages_its_own(
    open_service: OpenService,
    users: Users,
    identity: Identity,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    admin = users.make(Role.ADMIN, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    stranger = users.other_org().make(Role.ADMIN, teams=["t1"])
    org, other = admin.principal.org_id, stranger.principal.org_id
    flags = Flags(sessions)
    async with open_service(build_app, AutomationSettings, jobs_enabled=False) as automation:

        async def put(user_headers: dict[str, str], **body: Any) -> int:
            answer = await automation.put(FLAG, json=body, headers=user_headers)
            return answer.status_code

        assert await flags.enabled(SLA_WORKER, org, "t1") is False  # set nowhere: off

        # Only the automation service's own token sets a global flag.
        path = f"/internal/flags/{SLA_WORKER}"
        assert (
            await automation.put(path, json={"enabled": True}, headers=admin.headers)
        ).status_code == 401
        assert (
            await automation.put(
                path, json={"enabled": True}, headers=service_headers(identity, "gmail")
            )
        ).status_code == 403
        globally = await automation.put(
            path, json={"enabled": True}, headers=service_headers(identity, "automation")
        )
        assert globally.status_code == 200, globally.text
        assert await flags.enabled(SLA_WORKER, org, "t1") is True
        assert await flags.enabled(SLA_WORKER, other) is True

        # The org turns it off for itself, then on for one team; other orgs keep the global.
        assert await put(manager.headers, scope="org", enabled=False) == 403
        assert await put(admin.headers, scope="org", enabled=False) == 200
        assert await flags.enabled(SLA_WORKER, org, "t1") is False
        assert await flags.enabled(SLA_WORKER, other, "t1") is True
        assert await put(admin.headers, scope="team", team_id="t1", enabled=True) == 200
        assert await flags.enabled(SLA_WORKER, org, "t1") is True
        assert await flags.enabled(SLA_WORKER, org, "t2") is False
        details = await flags.client.get_boolean_details_async(
            SLA_WORKER, False, context_for(org, "t1")
        )
        assert details.reason == Reason.TARGETING_MATCH
        assert details.flag_metadata == {"scope": "team"}

        bad = await automation.put(
            FLAG, json={"scope": "team", "enabled": True}, headers=admin.headers
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body.team_id"
        assert (
            await automation.get("/api/automation/flags", headers=manager.headers)
        ).status_code == 403
        mine = (await automation.get("/api/automation/flags", headers=admin.headers)).json()[
            "items"
        ]
        assert {(row["scope"], row["team_id"], row["enabled"]) for row in mine} >= {
            ("org", None, False),
            ("team", "t1", True),
        }
        theirs = (await automation.get("/api/automation/flags", headers=stranger.headers)).json()[
            "items"
        ]
        assert all(row["scope"] == "global" for row in theirs)

        # Removing the team's setting: the org's applies again; another org's admin removes
        # nothing of this org.
        gone = await automation.delete(FLAG, params={"team_id": "t1"}, headers=stranger.headers)
        assert gone.status_code == 404
        removed = await automation.delete(FLAG, params={"team_id": "t1"}, headers=admin.headers)
        assert removed.status_code == 204
        assert await flags.enabled(SLA_WORKER, org, "t1") is False

        # The global setting is shared by every test run's orgs: put it back.
        await automation.put(
            path, json={"enabled": False}, headers=service_headers(identity, "automation")
        )


async def test_the_provider_answers_only_asynchronously_and_only_booleans() -> None:
    provider = DatabaseFlagProvider(async_sessionmaker())
    sync = provider.resolve_boolean_details(SLA_WORKER, True)
    assert sync.value is True
    assert sync.reason == Reason.ERROR
    assert provider.resolve_string_details(SLA_WORKER, "x").value == "x"
