"""The JWT attack set (RFC 8725, jwt_tool's cases): tokens every route must refuse with a 401.

Shared by the services' and the gateway's tests, so both prove the same thing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from pipedesk_testkit.identities import Identity


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def claims(identity: Identity, **overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    base = {
        "iss": "pipedesk-dev-identity",
        "aud": "pipedesk-api",
        "sub": "rep-1",
        "iat": now,
        "exp": now + 600,
        "email": "rep-1@example.com",
        "org_id": "org-auth",
        "role": "rep",
        "team_ids": ["team-a"],
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def signed(identity: Identity, body: dict[str, Any], **header: Any) -> str:
    key = identity.minter.key
    return jwt.encode({"alg": "RS256", "kid": key.kid, **header}, body, key, algorithms=["RS256"])


def with_payload(token: str, payload: dict[str, Any]) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{segment(payload)}.{signature}"


def forged_tokens(identity: Identity) -> dict[str, Callable[[], str]]:
    """Each attack by name, as a function making its token."""
    real_key: RSAKey = identity.minter.key
    attacker = RSAKey.generate_key(2048, parameters={"kid": "attacker"})
    public_pem = real_key.as_pem(private=False)
    good = claims(identity)

    def hs256_with_public_key() -> str:
        head = segment({"alg": "HS256", "typ": "JWT", "kid": real_key.kid})
        body = segment(good)
        mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(mac)}"

    def alg_none(alg: str) -> Callable[[], str]:
        return lambda: (
            f"{segment({'alg': alg, 'typ': 'JWT', 'kid': real_key.kid})}.{segment(good)}."
        )

    def embedded_jwk() -> str:
        header = {"alg": "RS256", "kid": real_key.kid, "jwk": attacker.as_dict(private=False)}
        return jwt.encode(header, good, attacker, algorithms=["RS256"])

    def stripped_signature() -> str:
        head, body, _ = signed(identity, good).split(".")
        return f"{head}.{body}."

    def es256_header_on_rsa_key() -> str:
        ec = ECKey.generate_key("P-256")
        return jwt.encode({"alg": "ES256", "kid": real_key.kid}, good, ec, algorithms=["ES256"])

    return {
        "alg none": alg_none("none"),
        "alg None": alg_none("None"),
        "alg NONE": alg_none("NONE"),
        "HS256 signed with the public key": hs256_with_public_key,
        "stripped signature": stripped_signature,
        "signed by an unknown key with a known kid": lambda: jwt.encode(
            {"alg": "RS256", "kid": real_key.kid}, good, attacker, algorithms=["RS256"]
        ),
        "embedded jwk": embedded_jwk,
        "unknown kid": lambda: jwt.encode(
            {"alg": "RS256", "kid": "attacker"}, good, attacker, algorithms=["RS256"]
        ),
        "ES256 header with an RSA kid": es256_header_on_rsa_key,
        "expired beyond the leeway": lambda: signed(
            identity, claims(identity, exp=int(datetime.now(UTC).timestamp()) - 120)
        ),
        "missing exp": lambda: signed(identity, claims(identity, exp=None)),
        "nbf in the future": lambda: signed(
            identity, claims(identity, nbf=int(datetime.now(UTC).timestamp()) + 300)
        ),
        "wrong iss": lambda: signed(identity, claims(identity, iss="https://evil.example.com")),
        "missing iss": lambda: signed(identity, claims(identity, iss=None)),
        "wrong aud": lambda: signed(identity, claims(identity, aud="another-client")),
        "missing aud": lambda: signed(identity, claims(identity, aud=None)),
        "missing sub": lambda: signed(identity, claims(identity, sub=None)),
        "missing org_id": lambda: signed(identity, claims(identity, org_id=None)),
        "unknown role": lambda: signed(identity, claims(identity, role="superuser")),
        "role tampered to admin": lambda: with_payload(
            signed(identity, good), {**good, "role": "admin"}
        ),
        "org tampered": lambda: with_payload(
            signed(identity, good), {**good, "org_id": "org-other"}
        ),
        "string exp": lambda: signed(identity, claims(identity, exp="9999999999")),
        "wrong typ": lambda: signed(identity, good, typ="svc+jwt"),
        "garbage": lambda: "not.a.jwt",
        "two segments": lambda: "abc.def",
        "oversized": lambda: signed(identity, claims(identity, pad="x" * 9000)),
    }


ATTACKS = [
    "alg none",
    "alg None",
    "alg NONE",
    "HS256 signed with the public key",
    "stripped signature",
    "signed by an unknown key with a known kid",
    "embedded jwk",
    "unknown kid",
    "ES256 header with an RSA kid",
    "expired beyond the leeway",
    "missing exp",
    "nbf in the future",
    "wrong iss",
    "missing iss",
    "wrong aud",
    "missing aud",
    "missing sub",
    "missing org_id",
    "unknown role",
    "role tampered to admin",
    "org tampered",
    "string exp",
    "wrong typ",
    "garbage",
    "two segments",
    "oversized",
]
