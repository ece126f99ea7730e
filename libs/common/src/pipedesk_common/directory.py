"""The org directory as other services read it: CRM's ``GET /internal/users/{id}``.

Decisions about another user (an assignee) use the directory, never a guessed id: a user of
another org is simply not found. The directory also gives the user's email (for domain-wide
delegation and a timeline item's participants).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from pipedesk_common.auth import Principal, Role, ServiceTokenIssuer
from pipedesk_common.errors import ServiceUnavailable
from pipedesk_common.internal_calls import read_internal


class DirectoryUser(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    org_id: str
    email: str | None = None
    name: str | None = None
    active: bool = True
    role: Role | None = None
    team_ids: list[str] = []


class OrgDirectory:
    def __init__(
        self,
        crm_url: str,
        *,
        http: Callable[[], httpx.AsyncClient],
        issuer: Callable[[], ServiceTokenIssuer],
    ) -> None:
        self.crm_url = crm_url.rstrip("/")
        self._http = http
        self._issuer = issuer

    async def user(self, org_id: str, user_id: str) -> DirectoryUser | None:
        """The user of ``org_id`` with this id, or None if the org has no such user."""
        found = await read_internal(
            self._http(),
            self._issuer(),
            "crm",
            f"{self.crm_url}/internal/users/{quote(user_id, safe='')}",
            what="the directory",
            params={"org_id": org_id},
        )
        if found is None:
            return None
        try:
            user = DirectoryUser.model_validate(found)
        except ValidationError as exc:
            raise ServiceUnavailable("the CRM directory answered an unreadable user") from exc
        return user if user.org_id == org_id and user.active else None

    async def acting_principal(self, org_id: str, user_id: str) -> Principal | None:
        """The user as their own token would describe them (role and teams from the directory),
        for a service acting on their behalf; None when the org has no such active user."""
        user = await self.user(org_id, user_id)
        if user is None or user.role is None:
            return None
        return Principal(
            sub=user.id,
            email=user.email or "",
            org_id=user.org_id,
            role=user.role,
            team_ids=frozenset(user.team_ids),
        )
