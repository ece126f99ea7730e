"""Token verification: end-user JWTs from the identity provider, and service tokens.

End-user tokens (RFC 8725): RS256/ES256 only, the key looked up by ``kid`` in the cached JWKS and
nowhere else (``jku``/``x5u``/embedded ``jwk`` are never used), ``iss``/``aud``/``exp`` required,
``nbf`` honoured, a small leeway. Service tokens for ``/internal/…``: ES256, ``sub = svc:<name>``,
``aud = <callee>``, 60 seconds, signed by the caller's own key, whose ``kid`` names its owner.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import extract_compact
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipedesk_common.clock import Clock, epoch_seconds
from pipedesk_common.errors import ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

SigningKey = RSAKey | ECKey
ALLOWED_ALGORITHMS: Final = frozenset({"RS256", "ES256"})
MAX_TOKEN_BYTES: Final = 8192
MIN_RSA_BITS: Final = 2048
SERVICE_TOKEN_ISSUER: Final = "pipedesk-services"  # noqa: S105 - an issuer name, not a secret
SERVICE_TOKEN_TYPE: Final = "svc+jwt"  # noqa: S105 - a media type, not a secret
SERVICE_TOKEN_LIFETIME: Final = 60
SERVICE_SUBJECT_PREFIX: Final = "svc:"
USER_TOKEN_TYPES: Final = frozenset({"JWT", "at+jwt"})
VERIFIED_TOKENS: Final = 10_000  # signature checks remembered per process


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    REP = "rep"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Principal:
    """The end user behind a request, as their token describes them."""

    sub: str
    email: str
    org_id: str
    role: Role
    team_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class ServiceCaller:
    """Another PipeDesk service calling an ``/internal/…`` route."""

    name: str


class _UserClaims(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: str = Field(min_length=1, max_length=255)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    org_id: str = Field(min_length=1, max_length=255)
    role: Role
    team_ids: list[str] = Field(default_factory=list, max_length=200)

    @field_validator("sub")
    @classmethod
    def _not_a_service(cls, sub: str) -> str:
        if sub.startswith(SERVICE_SUBJECT_PREFIX):
            raise ValueError("service tokens are not accepted on end-user routes")
        return sub


def key_algorithm(key: SigningKey) -> str | None:
    """The one algorithm we accept for a key, or None if we accept no algorithm for it."""
    if isinstance(key, RSAKey):
        modulus = key.as_dict(private=False)["n"]
        bits = len(modulus) * 6  # base64url characters, 6 bits each (at most 5 bits of padding)
        return "RS256" if bits >= MIN_RSA_BITS else None
    if isinstance(key, ECKey) and key.curve_name == "P-256":
        return "ES256"
    return None


def parse_jwks(document: Mapping[str, Any]) -> dict[str, SigningKey]:
    """The usable signing keys of a JWKS document, by ``kid``; anything else is skipped."""
    keys: dict[str, SigningKey] = {}
    for entry in document.get("keys", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in {"RSA", "EC"}:
            continue
        try:
            key: SigningKey = (
                RSAKey.import_key(entry) if entry["kty"] == "RSA" else ECKey.import_key(entry)
            )
        except (JoseError, ValueError, TypeError):
            log.warning("skipping a malformed JWKS entry", extra={"kid": entry["kid"]})
            continue
        algorithm = key_algorithm(key)
        if algorithm is None or entry.get("alg", algorithm) != algorithm:
            continue
        keys[entry["kid"]] = key
    return keys


class JwksCache:
    """Keys from a JWKS URL (``http(s)://`` or ``file://``), cached and refreshed with care.

    Keys are refetched when older than ``ttl`` and when a token names an unknown ``kid`` — at
    most once per ``min_refetch_interval``, so a flood of forged ``kid`` values costs one fetch.
    During an outage the last good keys stay in use.
    """

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient,
        clock: Clock,
        ttl: int = 300,
        min_refetch_interval: int = 60,
    ) -> None:
        self.url = url
        self._http = http
        self._clock = clock
        self._ttl = ttl
        self._min_refetch_interval = min_refetch_interval
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at: int | None = None
        self._attempted_at: int | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def key_for(self, kid: str) -> SigningKey | None:
        now = epoch_seconds(self._clock)
        if self._loaded_at is None or now - self._loaded_at >= self._ttl or kid not in self._keys:
            await self._refresh(now)
        if self._loaded_at is None:
            raise ServiceUnavailable("the identity provider's keys cannot be fetched")
        return self._keys.get(kid)

    async def _refresh(self, now: int) -> None:
        async with self._lock:
            if self._attempted_at is not None and now - self._attempted_at < (
                self._min_refetch_interval
            ):
                return
            self._attempted_at = now
            try:
                document = await self._fetch()
            except (httpx.HTTPError, OSError, ValueError) as exc:
                log.warning(
                    "JWKS fetch failed; keeping the last good keys", extra={"error": str(exc)}
                )
                return
            self._keys = parse_jwks(document)
            self._loaded_at = now

    async def _fetch(self) -> dict[str, Any]:
        self.fetch_count += 1
        parsed = urlparse(self.url)
        if parsed.scheme == "file":
            text = await asyncio.to_thread(Path(parsed.path).read_text)
            document = json.loads(text)
        else:
            response = await self._http.get(self.url, timeout=5.0)
            response.raise_for_status()
            document = response.json()
        if not isinstance(document, dict):
            raise ValueError("a JWKS must be a JSON object")
        return document


async def _verified_claims(
    token: str,
    keys: JwksCache,
    *,
    accepted_types: frozenset[str],
) -> tuple[dict[str, Any], str]:
    """Check the signature of a compact JWS against the cached keys; return (claims, kid)."""
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthorized("token too large")
    try:
        header = extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError):
        raise Unauthorized("malformed token") from None
    algorithm = header.get("alg")
    kid = header.get("kid")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise Unauthorized("token algorithm not accepted")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("token names no signing key")
    if header.get("typ", "JWT") not in accepted_types:
        raise Unauthorized("token type not accepted")
    if "crit" in header:
        raise Unauthorized("critical header parameters are not supported")
    key = await keys.key_for(kid)
    if key is None:
        raise Unauthorized("unknown signing key")
    if key_algorithm(key) != algorithm:
        raise Unauthorized("token algorithm does not match its key")
    try:
        decoded = jwt.decode(token, key, algorithms=[algorithm])
    except (JoseError, ValueError):
        raise Unauthorized("invalid token signature") from None
    return dict(decoded.claims), kid


def _validate_registered_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audience: str,
    now: int,
    leeway: int,
) -> None:
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=leeway,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        sub={"essential": True},
    )
    try:
        # Also refuses an exp, nbf or iat that is not a number (a string, a boolean).
        registry.validate(dict(claims))
    except JoseError as exc:
        raise Unauthorized(f"token rejected: {exc.description or exc.error}") from None


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token whose signature and claims have been checked, and when its claims hold."""

    claims: Mapping[str, Any]
    kid: str
    key: SigningKey
    principal: Principal
    start: float  # the claims hold from this time…
    end: float  # …until just before this one


def _valid_between(claims: Mapping[str, Any], leeway: int) -> tuple[float, float]:
    """When ``_validate_registered_claims`` accepts ``claims`` that it has accepted once: its
    time-bound checks (``exp``, and ``nbf`` and ``iat`` when present) as one window; every other
    check does not depend on the time."""
    not_before = [claims[name] for name in ("nbf", "iat") if claims.get(name) is not None]
    start = max(not_before) - leeway if not_before else float("-inf")
    return start, claims["exp"] + leeway


class TokenVerifier:
    """Verifies end-user access tokens and turns them into a Principal."""

    def __init__(
        self, keys: JwksCache, *, issuer: str, audience: str, clock: Clock, leeway: int = 30
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._leeway = leeway
        # Tokens whose signature has been checked: a signature check (RSA) is most of the cost
        # of a request's authentication, and a client sends the same token for many requests.
        self._verified: dict[str, _Verified] = {}

    async def principal(self, token: str) -> Principal:
        seen = self._verified.get(token)
        if seen is not None:
            # The same key under the same id still signs (a refreshed key set makes new key
            # objects, so a replaced key misses here); the time-bound claims are checked anew:
            # within the window they were valid in, only the time can have changed.
            if await self._keys.key_for(seen.kid) is seen.key:
                if not seen.start <= epoch_seconds(self._clock) < seen.end:
                    self._check_claims(seen.claims)
                return seen.principal
            del self._verified[token]
        claims, kid = await _verified_claims(token, self._keys, accepted_types=USER_TOKEN_TYPES)
        self._check_claims(claims)
        try:
            parsed = _UserClaims.model_validate(claims)
        except ValidationError as exc:
            missing = ", ".join(str(err["loc"][0]) for err in exc.errors() if err["loc"])
            raise Unauthorized(f"token claims invalid: {missing}") from None
        principal = Principal(
            sub=parsed.sub,
            email=parsed.email.lower(),
            org_id=parsed.org_id,
            role=parsed.role,
            team_ids=frozenset(parsed.team_ids),
        )
        signing = await self._keys.key_for(kid)
        if signing is not None:
            if len(self._verified) >= VERIFIED_TOKENS:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = _Verified(
                claims, kid, signing, principal, *_valid_between(claims, self._leeway)
            )
        return principal

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        _validate_registered_claims(
            claims,
            issuer=self._issuer,
            audience=self._audience,
            now=epoch_seconds(self._clock),
            leeway=self._leeway,
        )


def service_kid(service: str, key: ECKey) -> str:
    """A service key's id names its owner, so one service's key cannot speak for another."""
    return f"{service}.{key.thumbprint()[:16]}"


class ServiceTokenIssuer:
    """Mints this service's short-lived tokens for other services' ``/internal`` routes."""

    def __init__(self, service: str, key: ECKey, *, clock: Clock) -> None:
        if key.curve_name != "P-256" or not key.is_private:
            raise ValueError("a service key is a private P-256 key")
        self._service = service
        self._key = key
        self._kid = service_kid(service, key)
        self._clock = clock
        self._cache: dict[str, tuple[int, str]] = {}

    def token_for(self, audience: str) -> str:
        now = epoch_seconds(self._clock)
        cached = self._cache.get(audience)
        if cached is not None and cached[0] - now > 15:
            return cached[1]
        expires = now + SERVICE_TOKEN_LIFETIME
        claims = {
            "iss": SERVICE_TOKEN_ISSUER,
            "sub": SERVICE_SUBJECT_PREFIX + self._service,
            "aud": audience,
            "iat": now,
            "exp": expires,
        }
        header = {"alg": "ES256", "kid": self._kid, "typ": SERVICE_TOKEN_TYPE}
        token = jwt.encode(header, claims, self._key, algorithms=["ES256"])
        self._cache[audience] = (expires, token)
        return token


class ServiceTokenVerifier:
    """Verifies tokens other services send to this service's ``/internal/…`` routes."""

    def __init__(self, keys: JwksCache, *, audience: str, clock: Clock, leeway: int = 30) -> None:
        self._keys = keys
        self._audience = audience
        self._clock = clock
        self._leeway = leeway

    async def caller(self, token: str) -> ServiceCaller:
        claims, kid = await _verified_claims(
            token, self._keys, accepted_types=frozenset({SERVICE_TOKEN_TYPE})
        )
        now = epoch_seconds(self._clock)
        _validate_registered_claims(
            claims,
            issuer=SERVICE_TOKEN_ISSUER,
            audience=self._audience,
            now=now,
            leeway=self._leeway,
        )
        subject = str(claims["sub"])
        owner = kid.split(".", 1)[0]
        if subject != SERVICE_SUBJECT_PREFIX + owner:
            raise Unauthorized("service token signed with another service's key")
        issued_at = claims.get("iat")
        if not isinstance(issued_at, int) or claims["exp"] - issued_at > SERVICE_TOKEN_LIFETIME:
            raise Unauthorized("service token lifetime too long")
        return ServiceCaller(name=owner)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected an Authorization: Bearer token")
    return token
