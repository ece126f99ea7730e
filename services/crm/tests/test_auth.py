"""The JWT attack set, straight against the CRM service: every forgery is a 401 problem."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from dev_identity.keystore import KeyStore, TokenMinter
from dev_identity.server import create_identity_app
from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.clock import ManualClock, SystemClock
from pipedesk_testkit.attacks import ATTACKS, claims, forged_tokens, signed
from pipedesk_testkit.identities import Identity
from pipedesk_testkit.servers import serve_in_thread

pytestmark = pytest.mark.asyncio

LEADS = "/api/leads"


@pytest.mark.parametrize("case", ATTACKS)
async def test_forged_or_invalid_token_is_401(
    crm: httpx.AsyncClient, identity: Identity, case: str
) -> None:
    token = forged_tokens(identity)[case]()
    response = await crm.get(LEADS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


async def test_every_attack_is_exercised(identity: Identity) -> None:
    assert set(ATTACKS) == set(forged_tokens(identity))


async def test_valid_token_is_200_and_leeway_is_honoured(
    crm: httpx.AsyncClient, identity: Identity
) -> None:
    now = int(datetime.now(UTC).timestamp())
    for body in (claims(identity), claims(identity, exp=now - 10, nbf=now + 10)):
        response = await crm.get(
            LEADS, headers={"Authorization": f"Bearer {signed(identity, body)}"}
        )
        assert response.status_code == 200, response.text
    audience_list = claims(identity, aud=["other", "pipedesk-api"])
    response = await crm.get(
        LEADS, headers={"Authorization": f"Bearer {signed(identity, audience_list)}"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"]
)
async def test_missing_or_non_bearer_authorization_is_401(
    crm: httpx.AsyncClient, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await crm.get(LEADS, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_service_token_is_refused_on_end_user_routes(
    crm: httpx.AsyncClient, identity: Identity
) -> None:
    issuer = ServiceTokenIssuer(
        "timeline", KeyStore(identity.key_dir).service_key("timeline"), clock=SystemClock()
    )
    response = await crm.get(LEADS, headers={"Authorization": f"Bearer {issuer.token_for('crm')}"})
    assert response.status_code == 401


async def test_service_token_must_be_signed_by_its_own_service(
    crm: httpx.AsyncClient, identity: Identity
) -> None:
    store = KeyStore(identity.key_dir)
    tasks_key = store.service_key("tasks")
    timeline_kid = ServiceTokenIssuer(
        "timeline", store.service_key("timeline"), clock=SystemClock()
    )
    now = int(datetime.now(UTC).timestamp())
    impostor_claims = {
        "iss": "pipedesk-services",
        "sub": "svc:timeline",
        "aud": "crm",
        "iat": now,
        "exp": now + 60,
    }
    kid = timeline_kid._kid  # the timeline's key id, but signed with the tasks key
    forged = jwt.encode(
        {"alg": "ES256", "kid": kid, "typ": "svc+jwt"},
        impostor_claims,
        tasks_key,
        algorithms=["ES256"],
    )
    from pipedesk_common.auth import service_kid

    claims_other_owner = jwt.encode(
        {"alg": "ES256", "kid": service_kid("tasks", tasks_key), "typ": "svc+jwt"},
        impostor_claims,
        tasks_key,
        algorithms=["ES256"],
    )
    long_lived = jwt.encode(
        {"alg": "ES256", "kid": service_kid("tasks", tasks_key), "typ": "svc+jwt"},
        {**impostor_claims, "sub": "svc:tasks", "exp": now + 3600},
        tasks_key,
        algorithms=["ES256"],
    )
    path = "/internal/acl/lead/00000000-0000-7000-8000-000000000000"
    for token in (forged, claims_other_owner, long_lived):
        response = await crm.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, response.text


async def test_unknown_kids_refetch_the_jwks_at_most_once_a_minute(
    crm_app: Any, identity: Identity
) -> None:
    clock = ManualClock(datetime.now(UTC))
    async with crm_app(clock=clock) as client:
        minter = TokenMinter(identity.minter.key, clock=clock)
        valid = minter.mint(sub="u1", org_id="org-x", role="rep")
        assert (
            await client.get(LEADS, headers={"Authorization": f"Bearer {valid}"})
        ).status_code == 200
        keys = client._transport.app.state.context.user_tokens._keys  # type: ignore[attr-defined]
        fetched = keys.fetch_count
        for index in range(20):
            attacker = RSAKey.generate_key(2048, parameters={"kid": f"forged-{index}"})
            token = jwt.encode(
                {"alg": "RS256", "kid": f"forged-{index}"},
                claims(identity),
                attacker,
                algorithms=["RS256"],
            )
            assert (
                await client.get(LEADS, headers={"Authorization": f"Bearer {token}"})
            ).status_code == 401
        assert keys.fetch_count - fetched <= 1
        clock.advance(timedelta(seconds=61))
        token = jwt.encode(
            {"alg": "RS256", "kid": "forged-late"}, claims(identity), attacker, algorithms=["RS256"]
        )
        assert (
            await client.get(LEADS, headers={"Authorization": f"Bearer {token}"})
        ).status_code == 401
        assert keys.fetch_count - fetched <= 2


async def test_jku_and_x5u_are_never_fetched(crm: httpx.AsyncClient, identity: Identity) -> None:
    from fastapi import FastAPI

    calls: list[str] = []
    trap = FastAPI()

    @trap.get("/{path:path}")
    async def record(path: str) -> dict[str, Any]:
        calls.append(path)
        return {"keys": []}

    attacker = RSAKey.generate_key(2048, parameters={"kid": "attacker-jku"})
    with serve_in_thread(trap) as url:
        for header in ({"jku": f"{url}/jwks.json"}, {"x5u": f"{url}/cert.pem"}):
            token = jwt.encode(
                {"alg": "RS256", "kid": "attacker-jku", **header},
                claims(identity),
                attacker,
                algorithms=["RS256"],
            )
            response = await crm.get(LEADS, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
    assert calls == []


async def test_last_good_keys_survive_an_identity_provider_outage(
    crm_app: Any, tmp_path: Any
) -> None:
    from pipedesk_testkit.servers import port_of, reserve_port

    store = KeyStore(tmp_path)
    clock = ManualClock(datetime.now(UTC))
    minter = TokenMinter(store.identity_key(), clock=clock)
    provider = reserve_port()
    jwks_url = f"http://127.0.0.1:{port_of(provider)}/.well-known/jwks.json"

    def bearer() -> dict[str, str]:
        return {"Authorization": f"Bearer {minter.mint(sub='u1', org_id='org-outage', role='rep')}"}

    async with crm_app(clock=clock, AUTH_JWKS_URL=jwks_url) as client:
        with serve_in_thread(create_identity_app(store), sock=provider):
            assert (await client.get(LEADS, headers=bearer())).status_code == 200
        clock.advance(timedelta(minutes=10))  # past the cache TTL, with the provider down
        assert (await client.get(LEADS, headers=bearer())).status_code == 200
    async with crm_app(clock=clock, AUTH_JWKS_URL=jwks_url) as cold:
        response = await cold.get(LEADS, headers=bearer())
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
