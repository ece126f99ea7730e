"""Sync health: how each Google service's sync of each user's account stands.

Every Google service publishes ``<product>.sync.state_changed`` whenever the state of its sync of
a user changes; this service keeps the newest version per user and product (``sync_health``),
answers it to the user (their own) and to org admins (their org's users), and forwards a forced
resync of one product for one user to that product's service (``POST /internal/sync/resync``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import httpx
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from accounts_service.models import ConnectionStatus, GoogleConnection, SyncHealth
from accounts_service.repository import AccountsRepository
from accounts_service.schemas import (
    AccountHealthPublic,
    ConnectionPublic,
    ProductAccess,
    ProductHealthPublic,
    ProductState,
    ResyncStarted,
    SyncProblemPublic,
)
from accounts_service.service import product_access
from pipedesk_common.auth import Principal, Role, ServiceTokenIssuer
from pipedesk_common.consumer import Consumer
from pipedesk_common.errors import (
    PROBLEM_TYPE_BASE,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    not_found,
)
from pipedesk_common.events import Event, registered_types
from pipedesk_common.events.sync import SyncState, SyncStateChanged
from pipedesk_common.google.credentials import GoogleNotConnected, GoogleReconnectRequired
from pipedesk_common.google.scopes import granted_products
from pipedesk_common.mirror.routes import ResyncPublic

QUEUE: Final = "accounts.sync-health"


def sync_contracts() -> list[type[SyncStateChanged]]:
    """Every product's ``<product>.sync.state_changed`` contract."""
    found = [
        event_type.model
        for event_type in registered_types().values()
        if issubclass(event_type.model, SyncStateChanged)
    ]
    return sorted(found, key=lambda model: model.__name__)


def synced_products() -> list[str]:
    """The products whose service publishes its sync health."""
    return sorted(
        event_type.service
        for event_type in registered_types().values()
        if issubclass(event_type.model, SyncStateChanged)
    )


def follow_sync_health(consumer: Consumer) -> None:
    """Keep the replica current from every product's sync health events."""
    for model in sync_contracts():
        consumer.on(model)(store_health)


async def store_health(session: AsyncSession, event: Event[SyncStateChanged]) -> None:
    data = event.data
    error = data.last_error
    await AccountsRepository(session).store_health(
        {
            "org_id": event.org_id,
            "user_id": data.user_id,
            "product": data.product,
            "state": data.state.value,
            "last_success_at": data.last_success_at,
            "last_error_type": error.type if error else None,
            "last_error_message": error.message if error else None,
            "consecutive_failures": data.consecutive_failures,
            "next_attempt_at": data.next_attempt_at,
            "changed_at": data.changed_at,
            "version": data.version,
        }
    )


def _published(row: SyncHealth) -> ProductHealthPublic:
    error = (
        SyncProblemPublic(type=row.last_error_type, message=row.last_error_message or "")
        if row.last_error_type
        else None
    )
    return ProductHealthPublic(
        product=row.product,
        state=SyncState(row.state),
        last_success_at=row.last_success_at,
        last_error=error,
        consecutive_failures=row.consecutive_failures,
        next_attempt_at=row.next_attempt_at,
        changed_at=row.changed_at,
    )


def _not_synced_yet(product: str, connection: GoogleConnection) -> ProductHealthPublic:
    """A product connected but not synced yet (its service has published nothing)."""
    revoked = connection.status == ConnectionStatus.REVOKED
    error = (
        SyncProblemPublic(
            type=PROBLEM_TYPE_BASE + GoogleReconnectRequired.slug,
            message=connection.last_error or "Google revoked this user's access",
        )
        if revoked
        else None
    )
    return ProductHealthPublic(
        product=product,
        state=SyncState.NEEDS_RECONNECT if revoked else SyncState.IDLE,
        last_success_at=None,
        last_error=error,
        consecutive_failures=0,
        next_attempt_at=None,
        changed_at=None,
    )


def _not_granted(product: str, access: ProductAccess) -> ProductHealthPublic:
    """A product the user asked for but whose scopes Google did not all grant: nothing of it
    syncs until they connect it again."""
    return ProductHealthPublic(
        product=product,
        state=SyncState.NEEDS_RECONNECT,
        last_success_at=None,
        last_error=SyncProblemPublic(
            type=PROBLEM_TYPE_BASE + GoogleNotConnected.slug, message=access.problem or ""
        ),
        consecutive_failures=0,
        next_attempt_at=None,
        changed_at=None,
    )


class HealthBoard:
    def __init__(
        self,
        repository: AccountsRepository,
        *,
        http: httpx.AsyncClient,
        issuer: Callable[[], ServiceTokenIssuer],
        service_url: Callable[[str], str],
    ) -> None:
        self.repository = repository
        self.http = http
        self.issuer = issuer
        self.service_url = service_url

    async def page(
        self,
        principal: Principal,
        *,
        user_id: str | None,
        state: SyncState | None,
        after: str | None,
        limit: int,
    ) -> tuple[list[AccountHealthPublic], str | None]:
        """The caller's own health, or for an org admin their org's users (one user with
        ``user_id``; those with a product in ``state``); and where the next page starts."""
        if principal.role is not Role.ADMIN:
            if user_id not in (None, principal.sub):
                raise Forbidden("only an org admin may see another user's sync health")
            users = [principal.sub] if after is None else []
        elif user_id is not None:
            users = [user_id] if after is None else []
        else:
            users = await self.repository.health_users(
                principal.org_id, state=state.value if state else None, after=after, limit=limit + 1
            )
        more = users[limit - 1] if len(users) > limit else None
        accounts = await self.accounts(principal.org_id, users[:limit])
        if user_id is not None and user_id != principal.sub and not accounts[0].products:
            raise NotFound("no Google connection or sync for this user in your org")
        return accounts, more

    async def accounts(self, org_id: str, user_ids: list[str]) -> list[AccountHealthPublic]:
        rows = await self.repository.health_of(org_id, user_ids)
        connections = {c.user_id: c for c in await self.repository.connections_of(org_id, user_ids)}
        synced = set(synced_products())
        answer = []
        for user_id in user_ids:
            products = {row.product: _published(row) for row in rows if row.user_id == user_id}
            connection = connections.get(user_id)
            if connection is not None:
                for product in set(granted_products(connection.scopes)) & synced:
                    products.setdefault(product, _not_synced_yet(product, connection))
                for product, access in product_access(
                    connection.scopes, connection.requested_products
                ).items():
                    if product in synced and access.state is ProductState.NEEDS_RECONNECT:
                        products.setdefault(product, _not_granted(product, access))
            answer.append(
                AccountHealthPublic(
                    user_id=user_id, products=[products[name] for name in sorted(products)]
                )
            )
        return answer

    async def resync(
        self,
        principal: Principal,
        product: str,
        user_id: str,
        connection_of: Callable[[], Awaitable[ConnectionPublic]],
    ) -> ResyncStarted:
        """Ask ``product``'s service to resync ``user_id``'s account from scratch."""
        if product not in synced_products():
            raise not_found("product", "product with a sync", location="path")
        if user_id != principal.sub and principal.role is not Role.ADMIN:
            raise Forbidden("only an org admin may resync another user's account")
        access = await connection_of()
        if access.status == ConnectionStatus.REVOKED:
            raise GoogleReconnectRequired("Google revoked this user's access; reconnect first")
        if access.status != ConnectionStatus.CONNECTED or not access.products[product].granted:
            raise GoogleNotConnected(f"{product} is not connected for this user")
        try:
            answer = await self.http.post(
                f"{self.service_url(product)}/internal/sync/resync",
                json={"org_id": principal.org_id, "user_id": user_id},
                headers={"Authorization": f"Bearer {self.issuer().token_for(product)}"},
                timeout=15.0,
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"the {product} service cannot be reached") from exc
        if answer.status_code != 202:
            raise ServiceUnavailable(f"the {product} service answered {answer.status_code}")
        try:
            started = ResyncPublic.model_validate(answer.json())
        except (ValueError, ValidationError) as exc:
            raise ServiceUnavailable(f"the {product} service answered unreadably") from exc
        return ResyncStarted(user_id=user_id, product=product, syncs=started.syncs)
