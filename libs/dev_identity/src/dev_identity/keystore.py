"""Signing keys generated on first use and kept in a directory outside git."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from pipedesk_common.clock import Clock, SystemClock, epoch_seconds
from pipedesk_common.keys import dev_service_key_path, service_jwks

IDENTITY_KEY_FILE = "identity.pem"
DEFAULT_ISSUER = "pipedesk-dev-identity"
DEFAULT_AUDIENCE = "pipedesk-api"
SERVICES = (
    "gateway",
    "crm",
    "timeline",
    "accounts",
    "calendar",
    "tasks",
    "drive",
    "gmail",
    "automation",
)


def _write_private(path: Path, pem: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)


@dataclass
class KeyStore:
    """The identity provider's RSA key and one ES256 key per service, in ``directory``."""

    directory: Path

    def identity_key(self) -> RSAKey:
        path = self.directory / IDENTITY_KEY_FILE
        if not path.exists():
            key = RSAKey.generate_key(2048, private=True)
            # Another process may create it first; then theirs is used.
            with contextlib.suppress(FileExistsError):
                _write_private(path, key.as_pem(private=True))
        key = RSAKey.import_key(path.read_bytes())
        key.ensure_kid()
        return key

    def service_key(self, service: str) -> ECKey:
        path = dev_service_key_path(self.directory, service)
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                _write_private(path, ECKey.generate_key("P-256", private=True).as_pem(private=True))
        return ECKey.import_key(path.read_bytes())

    def ensure(self, services: Iterable[str] = SERVICES) -> None:
        self.identity_key()
        for service in services:
            self.service_key(service)

    def jwks(self) -> dict[str, Any]:
        public = self.identity_key().as_dict(private=False)
        return {"keys": [{**public, "use": "sig", "alg": "RS256"}]}

    def service_jwks(self) -> dict[str, Any]:
        return service_jwks(
            (path.stem.removeprefix("svc-"), ECKey.import_key(path.read_bytes()))
            for path in self.directory.glob("svc-*.pem")
        )


@dataclass
class TokenMinter:
    """Mints end-user access tokens signed by the dev identity key."""

    key: RSAKey
    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE
    clock: Clock = SystemClock()  # noqa: RUF009 - a stateless default is safe to share
    lifetime_seconds: int = 3600

    def mint(
        self,
        *,
        sub: str,
        org_id: str,
        role: str,
        email: str | None = None,
        team_ids: Sequence[str] = (),
        name: str | None = None,
    ) -> str:
        now = epoch_seconds(self.clock)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_seconds,
            "email": email or f"{sub}@example.com",
            "org_id": org_id,
            "role": role,
            "team_ids": list(team_ids),
        }
        if name:
            claims["name"] = name
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=["RS256"])
