"""End-user access tokens: a token whose signature was checked once is remembered, but what it
remembers never outlives what it stands for — the token's own time limits, and the key it was
signed with."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey

from pipedesk_common.auth import JwksCache, TokenVerifier, key_algorithm, parse_jwks
from pipedesk_common.clock import ManualClock, epoch_seconds
from pipedesk_common.errors import ServiceUnavailable, Unauthorized

pytestmark = pytest.mark.asyncio

ISSUER, AUDIENCE = "https://identity.test", "pipedesk"


def publish(path: Path, key: RSAKey, kid: str) -> None:
    path.write_text(json.dumps({"keys": [{**key.as_dict(private=False), "kid": kid}]}))


def mint(key: RSAKey, kid: str, clock: ManualClock, lifetime: int = 300, **claims: object) -> str:
    now = epoch_seconds(clock)
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u1",
        "email": "U1@acme.test",
        "org_id": "acme",
        "role": "rep",
        "team_ids": ["t1"],
        "iat": now,
        "exp": now + lifetime,
        **claims,
    }
    return jwt.encode({"alg": "RS256", "kid": kid}, payload, key)


async def test_a_remembered_token_still_expires_and_a_forged_twin_is_refused(
    tmp_path: Path,
) -> None:
    key = RSAKey.generate_key(2048, private=True)
    publish(tmp_path / "jwks.json", key, "k1")
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        keys = JwksCache((tmp_path / "jwks.json").as_uri(), http=http, clock=clock)
        verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, clock=clock, leeway=0)
        token = mint(key, "k1", clock, lifetime=60)
        first = await verifier.principal(token)
        assert (first.sub, first.org_id, first.email) == ("u1", "acme", "u1@acme.test")
        assert await verifier.principal(token) == first
        head, payload, signature = token.split(".")
        forged = f"{head}.{payload}.{signature[:-6]}AAAAAA"
        with pytest.raises(Unauthorized, match="signature"):
            await verifier.principal(forged)
        clock.advance(timedelta(seconds=61))
        with pytest.raises(Unauthorized, match="expired"):
            await verifier.principal(token)


async def test_a_remembered_token_goes_with_its_key(tmp_path: Path) -> None:
    """The identity provider replaces the key behind an id: once the key set is refetched, a
    token signed by the old key is refused though it was accepted before."""
    old, new = (RSAKey.generate_key(2048, private=True) for _ in range(2))
    publish(tmp_path / "jwks.json", old, "k1")
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        keys = JwksCache((tmp_path / "jwks.json").as_uri(), http=http, clock=clock, ttl=60)
        verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, clock=clock)
        token = mint(old, "k1", clock, lifetime=3600)
        assert (await verifier.principal(token)).sub == "u1"
        publish(tmp_path / "jwks.json", new, "k1")
        clock.advance(timedelta(seconds=120))  # past the key set's ttl: refetched
        with pytest.raises(Unauthorized, match="signature"):
            await verifier.principal(token)
        assert (await verifier.principal(mint(new, "k1", clock))).sub == "u1"


@pytest.mark.parametrize(
    ("claim", "value"), [("exp", "soon"), ("exp", True), ("nbf", "now"), ("iat", True)]
)
async def test_a_time_claim_that_is_not_a_number_is_refused(
    tmp_path: Path, claim: str, value: object
) -> None:
    key = RSAKey.generate_key(2048, private=True)
    publish(tmp_path / "jwks.json", key, "k1")
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        keys = JwksCache((tmp_path / "jwks.json").as_uri(), http=http, clock=clock)
        verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, clock=clock)
        assert (await verifier.principal(mint(key, "k1", clock))).sub == "u1"
        wrong: dict[str, Any] = {claim: value}
        with pytest.raises(
            Unauthorized, match=f"token rejected: Claim '{claim}' must be a NumericDate value"
        ):
            await verifier.principal(mint(key, "k1", clock, **wrong))


async def test_a_key_set_without_keys_refuses_every_token(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text("{}")
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        keys = JwksCache((tmp_path / "jwks.json").as_uri(), http=http, clock=clock)
        verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, clock=clock)
        token = mint(RSAKey.generate_key(2048, private=True), "k1", clock)
        with pytest.raises(Unauthorized, match=r"^unknown signing key$"):
            await verifier.principal(token)


async def test_a_key_set_keeps_only_the_signing_keys_it_can_trust() -> None:
    rsa = RSAKey.generate_key(2048, private=True)
    with pytest.warns(SecurityWarning):
        short = RSAKey.generate_key(1792, private=True)
    ec, p384 = (ECKey.generate_key(curve, private=True) for curve in ("P-256", "P-384"))

    def entry(key: RSAKey | ECKey, kid: object, **extra: str) -> dict[str, object]:
        return {**key.as_dict(private=False), "kid": kid, **extra}

    skipped: list[object] = [
        "not an object",
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},  # no kid
        entry(rsa, 7),
        entry(rsa, "encryption", use="enc"),
        {"kty": "oct", "kid": "symmetric", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "malformed", "n": "!", "e": "AQAB"},
        entry(short, "short"),  # 1792 bits
        entry(p384, "p384"),
        entry(rsa, "claims-es256", alg="ES256"),
    ]
    usable = [entry(rsa, "rsa"), entry(ec, "ec", alg="ES256"), entry(rsa, "sig", use="sig")]
    with pytest.warns(SecurityWarning):  # joserfc's, on importing the short key
        keys = parse_jwks({"keys": [*skipped, *usable, *skipped]})
    assert sorted(keys) == ["ec", "rsa", "sig"]
    assert key_algorithm(keys["rsa"]) == "RS256"
    assert key_algorithm(keys["ec"]) == "ES256"


async def test_keys_are_fetched_when_stale_or_a_kid_is_unknown_at_most_once_a_minute(
    tmp_path: Path,
) -> None:
    key = RSAKey.generate_key(2048, private=True)
    publish(tmp_path / "jwks.json", key, "k1")
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        keys = JwksCache((tmp_path / "jwks.json").as_uri(), http=http, clock=clock, ttl=300)
        assert await keys.key_for("k1") is not None
        clock.advance(timedelta(seconds=61))
        assert await keys.key_for("k1") is not None  # known and fresh: no fetch
        assert keys.fetch_count == 1
        clock.advance(timedelta(seconds=238))  # 299 s after the fetch
        assert await keys.key_for("k1") is not None
        assert keys.fetch_count == 1
        clock.advance(timedelta(seconds=1))  # 300 s: stale
        assert await keys.key_for("k1") is not None
        assert keys.fetch_count == 2
        clock.advance(timedelta(seconds=59))
        assert await keys.key_for("unknown") is None
        assert keys.fetch_count == 2  # 59 s after the last fetch
        clock.advance(timedelta(seconds=1))
        assert await keys.key_for("unknown") is None
        assert keys.fetch_count == 3  # a minute after it


async def test_keys_never_fetched_make_the_verifier_unavailable(tmp_path: Path) -> None:
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        keys = JwksCache((tmp_path / "missing.json").as_uri(), http=http, clock=clock)
        with pytest.raises(
            ServiceUnavailable, match=r"^the identity provider's keys cannot be fetched$"
        ):
            await keys.key_for("k1")


async def test_a_hung_identity_provider_does_not_hang_a_request() -> None:
    """The key fetch has a deadline of its own, whatever the HTTP client's."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # until the client gives up
        finally:
            writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(timeout=None) as http:  # noqa: S113 - the fetch's own deadline is the test
            keys = JwksCache(f"http://127.0.0.1:{port}/jwks.json", http=http, clock=ManualClock())
            async with asyncio.timeout(30):
                with pytest.raises(ServiceUnavailable):
                    await keys.key_for("k1")
    finally:
        server.close()
        await server.wait_closed()
