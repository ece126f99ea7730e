"""Who acts in a test: the run's dev identity provider and the users it mints tokens for."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dev_identity.keystore import TokenMinter
from pipedesk_common.auth import Principal, Role
from pipedesk_common.settings import JWKS_PATH, SERVICE_JWKS_PATH


@dataclass
class Identity:
    """The dev identity provider of this test run, served over HTTP like in ``make run``."""

    url: str
    key_dir: Path
    minter: TokenMinter

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    @property
    def service_jwks_url(self) -> str:
        return self.url + SERVICE_JWKS_PATH


@dataclass(frozen=True)
class ActingUser:
    principal: Principal
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def sub(self) -> str:
        return self.principal.sub


@dataclass
class Users:
    """Makes users with real tokens. Each test gets a fresh org, so tests never share data."""

    minter: TokenMinter
    org_id: str = field(default_factory=lambda: f"org-{uuid.uuid4().hex[:12]}")

    def make(
        self,
        role: Role | str = Role.REP,
        *,
        teams: Sequence[str] = ("team-a",),
        org_id: str | None = None,
        sub: str | None = None,
    ) -> ActingUser:
        role = Role(role)
        sub = sub or f"{role.value}-{uuid.uuid4().hex[:8]}"
        org = org_id or self.org_id
        email = f"{sub}@{org}.example.com"
        token = self.minter.mint(sub=sub, org_id=org, role=role.value, email=email, team_ids=teams)
        principal = Principal(
            sub=sub, email=email, org_id=org, role=role, team_ids=frozenset(teams)
        )
        return ActingUser(principal=principal, token=token)

    def other_org(self) -> Users:
        return Users(self.minter)
