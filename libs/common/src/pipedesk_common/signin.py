"""Who may no longer sign in: the org directory's deactivated users and the offboarded orgs, as
every process sees them.

A token stays valid until it expires, so a deactivated user's token is refused by what the
process knows of the directory, not by the token: ``SignInRefusals`` holds the deactivated
users, and every end-user route (``current_principal``, the gateway) refuses their requests with
``403 user-deactivated``. A process learns of a deactivation in two ways:

- at once, when the CRM calls its lifecycle contract (``pipedesk_common.lifecycle``) during the
  deactivation, in the process that answers that call;
- within ``AUTH_REFUSALS_REFRESH_SECONDS`` (5 s by default) otherwise: every process reads the
  CRM's ``GET /internal/users/deactivated`` that often (other processes of a service, the
  services outside the contract, the gateway).

An org's offboarding (``POST /api/org/offboard``) refuses every user of the org the same way,
with ``403 org-offboarded``, from the moment its job starts until an operator re-onboards it
(``python -m crm_service.reonboard``): a token of the org still valid after the offboarding never
recreates a row of it. A service learns of it at once when its part of the offboarding is
called, the others at their next read of the same list.

The CRM itself reads its own directory and jobs on every request. When the CRM cannot be
reached, the last list read stays in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, ValidationError

from pipedesk_common.auth import Principal, ServiceTokenIssuer
from pipedesk_common.errors import AppError, Forbidden, ServiceUnavailable
from pipedesk_common.internal_calls import read_internal
from pipedesk_common.messaging import raise_if_cancelling

log = logging.getLogger(__name__)

SIGN_INS_REFUSED = Counter(
    "pipedesk_sign_ins_refused_total",
    "Requests refused because their user was deactivated in the org directory",
    ["service"],
)


class UserDeactivated(Forbidden):
    slug, title = "user-deactivated", "This user was deactivated"


class OrgOffboarded(Forbidden):
    slug, title = "org-offboarded", "This organization was offboarded"


OFFBOARDED_DETAIL = (
    "this organization left PipeDesk and its data was deleted; it may sign in again once "
    "it is onboarded again"
)


class RefusedUser(BaseModel):
    """A deactivated user, as ``GET /internal/users/deactivated`` lists them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    org_id: str
    id: str


class Refusals(BaseModel):
    """What ``GET /internal/users/deactivated`` answers: the deactivated users and the orgs
    offboarded (and not onboarded again)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[RefusedUser]
    offboarded_orgs: list[str] = []


@dataclass
class SignInRefusals:
    """The deactivated users this process knows of, by ``(org_id, user_id)``, and the
    offboarded orgs."""

    service: str
    refused: frozenset[tuple[str, str]] = frozenset()
    refused_orgs: frozenset[str] = frozenset()
    loaded: bool = False

    def check(self, principal: Principal) -> None:
        """Refuse a request of an offboarded org (``403 org-offboarded``) or of a deactivated
        user (``403 user-deactivated``)."""
        if principal.org_id in self.refused_orgs:
            SIGN_INS_REFUSED.labels(self.service).inc()
            raise OrgOffboarded(OFFBOARDED_DETAIL)
        if (principal.org_id, principal.sub) in self.refused:
            SIGN_INS_REFUSED.labels(self.service).inc()
            raise UserDeactivated(
                "this user was deactivated in the org directory; an admin may reactivate them"
            )

    def refuse(self, org_id: str, user_id: str) -> None:
        self.refused = self.refused | {(org_id, user_id)}

    def allow(self, org_id: str, user_id: str) -> None:
        self.refused = self.refused - {(org_id, user_id)}

    def refuse_org(self, org_id: str) -> None:
        self.refused_orgs = self.refused_orgs | {org_id}

    def replace(self, users: Iterable[RefusedUser], orgs: Iterable[str] = ()) -> None:
        self.refused = frozenset((user.org_id, user.id) for user in users)
        self.refused_orgs = frozenset(orgs)
        self.loaded = True


async def read_refusals(
    http: httpx.AsyncClient, issuer: ServiceTokenIssuer, crm_url: str
) -> Refusals:
    """Every deactivated user of every org and every offboarded org, from the CRM."""
    found = await read_internal(
        http,
        issuer,
        "crm",
        f"{crm_url.rstrip('/')}/internal/users/deactivated",
        what="the deactivated users",
    )
    try:
        return Refusals.model_validate(found or {"items": []})
    except ValidationError as exc:
        raise ServiceUnavailable("the CRM answered an unreadable list of users") from exc


async def follow_refusals(
    refusals: SignInRefusals,
    *,
    http: Callable[[], httpx.AsyncClient],
    issuer: Callable[[], ServiceTokenIssuer],
    crm_url: str,
    every: float,
) -> None:
    """Read the deactivated users now and every ``every`` seconds, for as long as it runs."""
    while True:
        try:
            found = await read_refusals(http(), issuer(), crm_url)
            refusals.replace(found.items, found.offboarded_orgs)
        except (AppError, httpx.HTTPError) as exc:
            raise_if_cancelling()
            log.warning(
                "could not read the deactivated users; keeping the last list",
                extra={"error": str(exc)},
            )
        await asyncio.sleep(every)
