"""A deactivated user's valid token is refused (``403 user-deactivated``) from the list of
deactivated users a process reads from the CRM; while the CRM cannot be read, the last list
read stays in force."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from joserfc.jwk import ECKey

from pipedesk_common.auth import Principal, Role, ServiceTokenIssuer
from pipedesk_common.clock import SystemClock
from pipedesk_common.signin import (
    OrgOffboarded,
    RefusedUser,
    SignInRefusals,
    UserDeactivated,
    follow_refusals,
)
from pipedesk_testkit.waiting import eventually


def principal(org_id: str, sub: str) -> Principal:
    return Principal(
        sub=sub, email=f"{sub}@example.com", org_id=org_id, role=Role.REP, team_ids=frozenset()
    )


def test_refused_users_are_refused_by_org_and_id() -> None:
    refusals = SignInRefusals("timeline")
    refusals.replace([RefusedUser(org_id="org-a", id="u1")])
    with pytest.raises(UserDeactivated) as refused:
        refusals.check(principal("org-a", "u1"))
    assert refused.value.status == 403
    assert refused.value.type_uri == "urn:pipedesk:problem:user-deactivated"
    refusals.check(principal("org-b", "u1"))  # the same id in another org is another user
    refusals.check(principal("org-a", "u2"))
    refusals.allow("org-a", "u1")
    refusals.check(principal("org-a", "u1"))
    refusals.refuse("org-a", "u2")
    with pytest.raises(UserDeactivated):
        refusals.check(principal("org-a", "u2"))


def test_every_user_of_an_offboarded_org_is_refused_until_the_list_no_longer_names_it() -> None:
    refusals = SignInRefusals("calendar")
    refusals.refuse_org("org-a")
    for sub in ("u1", "someone-new"):
        with pytest.raises(OrgOffboarded) as refused:
            refusals.check(principal("org-a", sub))
        assert refused.value.status == 403
        assert refused.value.type_uri == "urn:pipedesk:problem:org-offboarded"
    refusals.check(principal("org-b", "u1"))
    refusals.replace([], ["org-a"])
    with pytest.raises(OrgOffboarded):
        refusals.check(principal("org-a", "u1"))
    refusals.replace([RefusedUser(org_id="org-a", id="u1")], [])  # onboarded again
    refusals.check(principal("org-a", "u2"))
    with pytest.raises(UserDeactivated):
        refusals.check(principal("org-a", "u1"))


@pytest.mark.asyncio
async def test_the_last_list_read_stays_in_force_while_the_crm_cannot_be_read() -> None:
    seen: list[httpx.Request] = []

    def crm(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(
                200,
                json={"items": [{"org_id": "org-a", "id": "u1"}], "offboarded_orgs": ["org-z"]},
            )
        return httpx.Response(503)

    key = ECKey.generate_key("P-256", private=True)
    issuer = ServiceTokenIssuer("timeline", key, clock=SystemClock())
    refusals = SignInRefusals("timeline")
    async with httpx.AsyncClient(transport=httpx.MockTransport(crm)) as http:
        following = asyncio.create_task(
            follow_refusals(
                refusals,
                http=lambda: http,
                issuer=lambda: issuer,
                crm_url="http://crm.internal/",
                every=0.01,
            )
        )

        async def reads() -> int:
            return len(seen)

        try:
            await eventually(reads, until=lambda count: count >= 3)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
    assert refusals.loaded
    with pytest.raises(UserDeactivated):
        refusals.check(principal("org-a", "u1"))
    with pytest.raises(OrgOffboarded):
        refusals.check(principal("org-z", "u9"))
    assert {str(request.url) for request in seen} == {
        "http://crm.internal/internal/users/deactivated"
    }
    assert seen[0].headers["authorization"] == f"Bearer {issuer.token_for('crm')}"
