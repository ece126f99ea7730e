"""``MirrorRuntime``: what a Google service's routes, jobs, consumers and syncs share for the
life of the process, found by routes through ``RuntimeDep``-style dependencies
(``Annotated[CalendarRuntime, Depends(provided(MirrorRuntime))]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pipedesk_common.access import AccessReplica
from pipedesk_common.auth import Principal
from pipedesk_common.background import BackgroundWork
from pipedesk_common.clock import Clock
from pipedesk_common.directory import OrgDirectory
from pipedesk_common.errors import Forbidden
from pipedesk_common.google.credentials import GoogleUser
from pipedesk_common.google.push import PushChannels
from pipedesk_common.idempotency import IdempotencyKeys
from pipedesk_common.mirror.health import SyncHealth
from pipedesk_common.mirror.settings import GoogleServiceSettings
from pipedesk_common.mirror.tables import MirrorTables
from pipedesk_common.mirror.work import SyncWork
from pipedesk_common.rbac import ROLE_ACTIONS, Action
from pipedesk_common.uow import UnitOfWork

G = TypeVar("G")
S = TypeVar("S", bound=GoogleServiceSettings)


@dataclass
class MirrorRuntime(Generic[G, S]):
    product: str
    settings: S
    tables: MirrorTables
    uow: UnitOfWork
    clock: Clock
    google: G
    replica: AccessReplica
    directory: OrgDirectory
    idempotency: IdempotencyKeys
    health: SyncHealth
    work: SyncWork
    background: BackgroundWork
    channels: PushChannels | None = None

    def push(self) -> PushChannels:
        """The push channels (for a service Google notifies)."""
        if self.channels is None:
            raise RuntimeError(f"the {self.product} service has no push channels")
        return self.channels


def google_user(principal: Principal) -> GoogleUser:
    """The caller's own Google account."""
    return GoogleUser(org_id=principal.org_id, user_id=principal.sub, email=principal.email)


def require_role(principal: Principal, action: Action, noun: str) -> None:
    """``403`` unless the caller's role may ``action`` (``noun``: what, e.g. ``tasks``)."""
    if action not in ROLE_ACTIONS[principal.role]:
        raise Forbidden(f"your role may not {action.value} {noun}")
