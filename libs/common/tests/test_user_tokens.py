"""End-user access tokens: a token whose signature was checked once is remembered, but what it
remembers never outlives what it stands for — the token's own time limits, and the key it was
signed with."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey

from pipedesk_common import auth
from pipedesk_common.auth import (
    MAX_TOKEN_BYTES,
    JwksCache,
    TokenVerifier,
    bearer_token,
    key_algorithm,
    parse_jwks,
)
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


@dataclass(frozen=True)
class Provider:
    """A test's identity provider: its key set at a ``file://`` URL (``key`` under the id
    ``k1``), the cache that reads it, and the clock of both."""

    jwks: Path
    key: RSAKey
    clock: ManualClock
    keys: JwksCache

    def verifier(self, leeway: int = 30) -> TokenVerifier:
        return TokenVerifier(
            self.keys, issuer=ISSUER, audience=AUDIENCE, clock=self.clock, leeway=leeway
        )

    def mint(self, lifetime: int = 300, *, key: RSAKey | None = None, **claims: object) -> str:
        return mint(key or self.key, "k1", self.clock, lifetime, **claims)


@pytest_asyncio.fixture
async def provider(tmp_path: Path) -> AsyncIterator[Provider]:
    key = RSAKey.generate_key(2048, private=True)
    jwks = tmp_path / "jwks.json"
    publish(jwks, key, "k1")
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        yield Provider(jwks, key, clock, JwksCache(jwks.as_uri(), http=http, clock=clock))


async def test_a_remembered_token_still_expires_and_a_forged_twin_is_refused(
    provider: Provider,
) -> None:
    verifier = provider.verifier(leeway=0)
    token = provider.mint(lifetime=60)
    first = await verifier.principal(token)
    assert (first.sub, first.org_id, first.email) == ("u1", "acme", "u1@acme.test")
    assert await verifier.principal(token) == first
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-6]}AAAAAA"
    with pytest.raises(Unauthorized, match="signature"):
        await verifier.principal(forged)
    provider.clock.advance(timedelta(seconds=61))
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.principal(token)


async def test_a_remembered_token_is_answered_from_memory(provider: Provider) -> None:
    """While its key stands and the time is within its window, a remembered token is not checked
    again: the answer is the very principal its first check made, and the key set is not fetched
    for it (a refetch would be allowed: a minute has passed)."""
    verifier = provider.verifier()
    token = provider.mint(lifetime=3600)
    first = await verifier.principal(token)
    provider.clock.advance(timedelta(seconds=61))
    assert await verifier.principal(token) is first
    assert provider.keys.fetch_count == 1


async def test_a_remembered_token_holds_exactly_while_its_time_claims_do(
    provider: Provider,
) -> None:
    """Remembered, a token is accepted from its ``nbf`` (or ``iat``) less the leeway until just
    before its ``exp`` plus the leeway, as when it was first checked — whichever way the clock
    moves."""
    clock = provider.clock
    verifier = provider.verifier(leeway=30)
    start = clock.now()
    token = provider.mint(lifetime=60, nbf=epoch_seconds(clock) + 10)
    await verifier.principal(token)  # checked whole, then remembered
    clock.set(start + timedelta(seconds=89))
    assert (await verifier.principal(token)).sub == "u1"
    clock.set(start + timedelta(seconds=90))
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.principal(token)
    clock.set(start - timedelta(seconds=20))
    assert (await verifier.principal(token)).sub == "u1"
    clock.set(start - timedelta(seconds=21))
    with pytest.raises(Unauthorized, match=r"not yet valid|future"):
        await verifier.principal(token)
    # Without an nbf, its iat bounds it from below.
    clock.set(start)
    issued = provider.mint(lifetime=60)
    await verifier.principal(issued)
    clock.set(start - timedelta(seconds=30))
    assert (await verifier.principal(issued)).sub == "u1"
    clock.set(start - timedelta(seconds=31))
    with pytest.raises(Unauthorized, match=r"not yet valid|future"):
        await verifier.principal(issued)


async def test_a_token_with_neither_nbf_nor_iat_is_accepted_and_remembered(
    provider: Provider,
) -> None:
    """Both are optional: without either, the token holds from any time until its ``exp``."""
    clock = provider.clock
    verifier = provider.verifier(leeway=0)
    start = clock.now()
    claims = jwt.decode(provider.mint(lifetime=60), provider.key).claims
    del claims["iat"]
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, provider.key)
    assert (await verifier.principal(token)).sub == "u1"
    clock.set(start - timedelta(days=365))
    assert (await verifier.principal(token)).sub == "u1"
    clock.set(start + timedelta(seconds=60))
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.principal(token)


async def test_a_remembered_token_goes_with_its_key(provider: Provider) -> None:
    """The identity provider replaces the key behind an id: once the key set is refetched, a
    token signed by the old key is refused though it was accepted before."""
    new = RSAKey.generate_key(2048, private=True)
    verifier = provider.verifier()
    token = provider.mint(lifetime=3600)
    assert (await verifier.principal(token)).sub == "u1"
    publish(provider.jwks, new, "k1")
    provider.clock.advance(timedelta(seconds=301))  # past the key set's ttl: refetched
    with pytest.raises(Unauthorized, match="signature"):
        await verifier.principal(token)
    assert (await verifier.principal(provider.mint(key=new))).sub == "u1"


@pytest.mark.parametrize(
    ("claim", "value"), [("exp", "soon"), ("exp", True), ("nbf", "now"), ("iat", True)]
)
async def test_a_time_claim_that_is_not_a_number_is_refused(
    provider: Provider, claim: str, value: object
) -> None:
    verifier = provider.verifier()
    assert (await verifier.principal(provider.mint())).sub == "u1"
    wrong: dict[str, Any] = {claim: value}
    with pytest.raises(
        Unauthorized, match=f"token rejected: Claim '{claim}' must be a NumericDate value"
    ):
        await verifier.principal(provider.mint(**wrong))


async def test_a_key_set_without_keys_refuses_every_token(provider: Provider) -> None:
    provider.jwks.write_text("{}")  # before the first fetch
    with pytest.raises(Unauthorized, match=r"^unknown signing key$"):
        await provider.verifier().principal(provider.mint())


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
    provider: Provider,
) -> None:
    keys, clock = provider.keys, provider.clock  # the default ttl: 300 s
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
    """The key fetch has a deadline of its own, whatever the HTTP client's: 5 seconds for each
    of connecting, sending, waiting for the answer and waiting for a pooled connection."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # until the client gives up
        finally:
            writer.close()

    deadlines: list[object] = []

    async def note_deadline(request: httpx.Request) -> None:
        deadlines.append(request.extensions["timeout"])

    hooks = {"request": [note_deadline]}
    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(timeout=None, event_hooks=hooks) as http:  # noqa: S113 - the fetch's own deadline is the test
            keys = JwksCache(f"http://127.0.0.1:{port}/jwks.json", http=http, clock=ManualClock())
            async with asyncio.timeout(30):
                with pytest.raises(ServiceUnavailable):
                    await keys.key_for("k1")
    finally:
        server.close()
        await server.wait_closed()
    assert deadlines == [{"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}]


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


async def test_each_refused_token_is_refused_for_its_own_reason(provider: Provider) -> None:
    """What the 401 says is why: a client (and whoever reads its logs) learns which check its
    token failed, and each check refuses on its own, before any later one is reached."""
    key, clock = provider.key, provider.clock
    ec = ECKey.generate_key("P-256", private=True)
    provider.jwks.write_text(  # before the first fetch
        json.dumps(
            {
                "keys": [
                    {**key.as_dict(private=False), "kid": "k1"},
                    {**ec.as_dict(private=False), "kid": "e1"},
                ]
            }
        )
    )
    good = json.loads(base64.urlsafe_b64decode(mint(key, "k1", clock).split(".")[1] + "=="))
    attacker = RSAKey.generate_key(2048, private=True)

    def header_only(header: dict[str, object]) -> str:
        return f"{_segment(header)}.{_segment(good)}.c2ln"

    def without(*names: str) -> dict[str, object]:
        return {name: value for name, value in good.items() if name not in names}

    refused = {
        "x" * (MAX_TOKEN_BYTES + 1): "token too large",
        "x" * MAX_TOKEN_BYTES: "malformed token",  # as long as a token may be: read, and refused
        "not.a.jwt": "malformed token",
        "é.a.b": "malformed token",
        header_only({"alg": "HS256", "kid": "k1"}): "token algorithm not accepted",
        header_only({"alg": "RS256"}): "token names no signing key",
        header_only({"alg": "RS256", "kid": ""}): "token names no signing key",
        header_only({"alg": "RS256", "kid": 7}): "token names no signing key",
        header_only({"alg": "RS256", "kid": "k1", "typ": "svc+jwt"}): "token type not accepted",
        header_only({"alg": "RS256", "kid": "k1", "crit": ["exp"]}): (
            "critical header parameters are not supported"
        ),
        header_only({"alg": "RS256", "kid": "nobody"}): "unknown signing key",
        header_only({"alg": "ES256", "kid": "k1"}): "token algorithm does not match its key",
        mint(attacker, "k1", clock): "invalid token signature",
        jwt.encode({"alg": "RS256", "kid": "k1"}, without("org_id"), key): (
            "token claims invalid: org_id"
        ),
        jwt.encode({"alg": "RS256", "kid": "k1"}, without("org_id", "role"), key): (
            "token claims invalid: org_id, role"
        ),
    }
    verifier = provider.verifier()
    reasons = {}
    for token in refused:
        with pytest.raises(Unauthorized) as refusal:
            await verifier.principal(token)
        reasons[token] = refusal.value.detail
    assert reasons == refused
    for accepted in (
        provider.mint(),
        jwt.encode({"alg": "ES256", "kid": "e1"}, good, ec, algorithms=["ES256"]),
    ):
        assert (await verifier.principal(accepted)).sub == "u1"


@pytest.mark.parametrize(
    ("authorization", "token"),
    [("Bearer abc", "abc"), ("bearer abc", "abc"), ("Bearer   abc  ", "abc")],
)
async def test_a_bearer_token_is_read_whatever_the_schemes_case_and_spacing(
    authorization: str, token: str
) -> None:
    assert bearer_token(authorization) == token


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("Bearer", "expected an Authorization: Bearer token"),
        ("Bearer   ", "expected an Authorization: Bearer token"),
        ("Basic dXNlcjpwYXNz", "expected an Authorization: Bearer token"),
        ("Token abc", "expected an Authorization: Bearer token"),
    ],
)
async def test_anything_but_a_bearer_token_is_refused_saying_what_is_expected(
    authorization: str | None, reason: str
) -> None:
    with pytest.raises(Unauthorized) as refusal:
        bearer_token(authorization)
    assert refusal.value.detail == reason


async def test_the_verifier_remembers_a_bounded_number_of_tokens(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its bound the verifier forgets its oldest token, and goes on accepting every valid
    one; a remembered token costs no fetch of the key set while its key is fresh and known."""
    monkeypatch.setattr(auth, "VERIFIED_TOKENS", 2)
    verifier = provider.verifier()
    tokens = [provider.mint(sub=f"u{index}") for index in range(4)]
    for _ in range(2):
        assert [(await verifier.principal(token)).sub for token in tokens] == [
            "u0",
            "u1",
            "u2",
            "u3",
        ]
        assert len(verifier._verified) == 2
        provider.clock.advance(timedelta(seconds=61))
    assert provider.keys.fetch_count == 1
