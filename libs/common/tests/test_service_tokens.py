"""Service tokens for ``/internal/…`` routes: minted for 60 seconds and reused until 15 seconds
before they expire; accepted only by their audience, in time, from the service whose key signed
them, and never with a longer lifetime."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from pipedesk_common.auth import (
    SERVICE_TOKEN_LIFETIME,
    JwksCache,
    ServiceTokenIssuer,
    ServiceTokenVerifier,
    service_kid,
)
from pipedesk_common.clock import ManualClock, epoch_seconds
from pipedesk_common.errors import Unauthorized

pytestmark = pytest.mark.asyncio


def publish(path: Path, keys: dict[str, ECKey]) -> str:
    """A service JWKS of ``keys`` (by service) at ``path``; its ``file://`` URL."""
    entries = [
        {**key.as_dict(private=False), "kid": service_kid(service, key), "use": "sig"}
        for service, key in keys.items()
    ]
    path.write_text(json.dumps({"keys": entries}))
    return path.as_uri()


def claims_of(token: str, key: ECKey) -> dict[str, Any]:
    return dict(jwt.decode(token, key, algorithms=["ES256"]).claims)


def signed(key: ECKey, kid: str, claims: dict[str, Any]) -> str:
    return jwt.encode({"alg": "ES256", "kid": kid, "typ": "svc+jwt"}, claims, key)


async def test_a_token_names_its_caller_to_its_audience_until_it_expires(tmp_path: Path) -> None:
    tasks = ECKey.generate_key("P-256", private=True)
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        keys = JwksCache(publish(tmp_path / "jwks.json", {"tasks": tasks}), http=http, clock=clock)
        crm = ServiceTokenVerifier(keys, audience="crm", clock=clock, leeway=0)
        timeline = ServiceTokenVerifier(keys, audience="timeline", clock=clock, leeway=0)
        token = ServiceTokenIssuer("tasks", tasks, clock=clock).token_for("crm")
        now = epoch_seconds(clock)
        assert claims_of(token, tasks) == {
            "iss": "pipedesk-services",
            "sub": "svc:tasks",
            "aud": "crm",
            "iat": now,
            "exp": now + SERVICE_TOKEN_LIFETIME,
        }
        assert (await crm.caller(token)).name == "tasks"
        with pytest.raises(Unauthorized, match=r"token rejected: .*aud"):
            await timeline.caller(token)
        clock.advance(timedelta(seconds=SERVICE_TOKEN_LIFETIME - 1))
        assert (await crm.caller(token)).name == "tasks"
        clock.advance(timedelta(seconds=1))
        with pytest.raises(Unauthorized, match="token rejected: The token is expired"):
            await crm.caller(token)


async def test_a_token_is_reused_until_15_seconds_before_it_expires() -> None:
    clock = ManualClock()
    key = ECKey.generate_key("P-256", private=True)
    issuer = ServiceTokenIssuer("tasks", key, clock=clock)
    first = issuer.token_for("crm")
    assert issuer.token_for("timeline") != first  # one token per audience
    clock.advance(timedelta(seconds=SERVICE_TOKEN_LIFETIME - 16))
    assert issuer.token_for("crm") == first
    clock.advance(timedelta(seconds=1))
    second = issuer.token_for("crm")
    assert second != first
    assert claims_of(second, key)["exp"] == epoch_seconds(clock) + SERVICE_TOKEN_LIFETIME
    assert issuer.token_for("crm") == second


async def test_a_token_must_be_the_key_owners_own_and_short_lived(tmp_path: Path) -> None:
    tasks, timeline = (ECKey.generate_key("P-256", private=True) for _ in range(2))
    clock = ManualClock()
    now = epoch_seconds(clock)
    async with httpx.AsyncClient() as http:
        url = publish(tmp_path / "jwks.json", {"tasks": tasks, "timeline": timeline})
        keys = JwksCache(url, http=http, clock=clock)
        crm = ServiceTokenVerifier(keys, audience="crm", clock=clock)
        valid = {"iss": "pipedesk-services", "aud": "crm", "sub": "svc:tasks", "iat": now}
        kid = service_kid("tasks", tasks)
        assert (await crm.caller(signed(tasks, kid, {**valid, "exp": now + 60}))).name == "tasks"
        without_iat = {name: value for name, value in valid.items() if name != "iat"}
        without_sub = {name: value for name, value in valid.items() if name != "sub"}
        timeline_kid = service_kid("timeline", timeline)
        for reason, token in (
            (
                "^service token signed with another service's key$",
                signed(timeline, timeline_kid, {**valid, "exp": now + 60}),
            ),
            ("^service token lifetime too long$", signed(tasks, kid, {**valid, "exp": now + 61})),
            (
                "^service token lifetime too long$",
                signed(tasks, kid, {**without_iat, "exp": now + 60}),
            ),
            ("^token rejected: .*'sub'", signed(tasks, kid, {**without_sub, "exp": now + 60})),
            (
                "^token rejected: .*'iss'",
                signed(tasks, kid, {**valid, "iss": "https://identity.test", "exp": now + 60}),
            ),
        ):
            with pytest.raises(Unauthorized, match=reason):
                await crm.caller(token)


async def test_only_a_private_p256_key_issues_service_tokens() -> None:
    private = ECKey.generate_key("P-256", private=True)
    public = ECKey.import_key(private.as_dict(private=False))
    for key in (public, ECKey.generate_key("P-384", private=True)):
        with pytest.raises(ValueError, match=r"^a service key is a private P-256 key$"):
            ServiceTokenIssuer("tasks", key, clock=ManualClock())


async def test_a_service_token_is_accepted_for_less_than_30_seconds_past_its_expiry(
    tmp_path: Path,
) -> None:
    """The default leeway, for clocks a little apart: the token's last second is 29 seconds
    after its expiry, and 30 seconds after it the token is refused."""
    tasks = ECKey.generate_key("P-256", private=True)
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        keys = JwksCache(publish(tmp_path / "jwks.json", {"tasks": tasks}), http=http, clock=clock)
        crm = ServiceTokenVerifier(keys, audience="crm", clock=clock)
        token = ServiceTokenIssuer("tasks", tasks, clock=clock).token_for("crm")
        clock.advance(timedelta(seconds=SERVICE_TOKEN_LIFETIME + 29))
        assert (await crm.caller(token)).name == "tasks"
        clock.advance(timedelta(seconds=1))
        with pytest.raises(Unauthorized, match="token rejected: The token is expired"):
            await crm.caller(token)


async def test_a_jwks_written_by_the_documented_key_id_rule_verifies_a_services_tokens(
    tmp_path: Path,
) -> None:
    """A service key's id is ``<service>.<first 16 characters of the key's RFC 7638
    thumbprint>``: a service JWKS made by that rule alone (by hand, another tool, an older
    release) holds the key the service's own tokens name."""
    tasks = ECKey.generate_key("P-256", private=True)
    public = tasks.as_dict(private=False)
    required = {name: public[name] for name in ("crv", "kty", "x", "y")}  # RFC 7638, for EC
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=")
    kid = f"tasks.{thumbprint.decode()[:16]}"
    entry = {**public, "kid": kid, "use": "sig", "alg": "ES256"}
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [entry]}))
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        keys = JwksCache((tmp_path / "jwks.json").as_uri(), http=http, clock=clock)
        crm = ServiceTokenVerifier(keys, audience="crm", clock=clock)
        token = ServiceTokenIssuer("tasks", tasks, clock=clock).token_for("crm")
        assert (await crm.caller(token)).name == "tasks"
