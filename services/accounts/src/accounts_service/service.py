"""Google connections: the connect flow, status, disconnect, access tokens, delegation.

Never commits (the request's session does). Where a request must both record a change and
answer a problem (Google revoked the grant), the problem is returned, not raised, so the change
commits.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from accounts_service.google import GoogleOAuth, OAuthRefused, TokenGrant, state_hash
from accounts_service.models import (
    AccountsModel,
    ConnectionStatus,
    GoogleConnection,
    GoogleDelegation,
    OAuthState,
    outbox,
    seal_context,
)
from accounts_service.repository import AccountsRepository
from accounts_service.schemas import (
    ConnectionPublic,
    DelegationIn,
    DelegationPublic,
    ProductAccess,
    ProductState,
    TokenAnswer,
    TokenRequest,
    Via,
)
from accounts_service.settings import AccountsSettings
from accounts_service.stopping import ProductStops
from accounts_service.vault import Vault
from pipedesk_common.auth import Principal
from pipedesk_common.clock import Clock
from pipedesk_common.directory import OrgDirectory
from pipedesk_common.erasure import erase_events, erase_org_rows, erase_user_rows
from pipedesk_common.errors import AppError, FieldError, Forbidden, InvalidInput, NotFound
from pipedesk_common.events.accounts import (
    GoogleConnected,
    GoogleConnectionData,
    GoogleDisconnected,
    GoogleRevoked,
)
from pipedesk_common.events.envelope import new_event
from pipedesk_common.google.calls import GoogleCallError
from pipedesk_common.google.credentials import (
    GoogleDelegationRefused,
    GoogleNotConnected,
    GoogleReconnectRequired,
)
from pipedesk_common.google.scopes import (
    IDENTITY_SCOPES,
    PRODUCT_SCOPES,
    granted_products,
    missing_scopes,
    products_needing,
    scopes_for,
)
from pipedesk_common.ids import new_id
from pipedesk_common.lifecycle import GoogleDataDeletion, OrgOffboarding, UserDeactivation
from pipedesk_common.outbox import add_event

LAST_USED_GRANULARITY = timedelta(minutes=1)
MAX_DELEGATED_CACHED = 10_000


class InvalidState(AppError):
    status, slug, title = 400, "oauth-state-invalid", "This Google sign-in link is not valid"


@dataclass
class DelegatedTokens:
    """Access tokens from the JWT-bearer grant, per (org, subject, scopes), in memory."""

    entries: OrderedDict[tuple[str, str, frozenset[str]], tuple[str, datetime]] = field(
        default_factory=OrderedDict
    )
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def get(self, key: tuple[str, str, frozenset[str]], usable_after: datetime) -> str | None:
        entry = self.entries.get(key)
        if entry is None or entry[1] <= usable_after:
            return None
        self.entries.move_to_end(key)
        return entry[0]

    def put(self, key: tuple[str, str, frozenset[str]], token: str, expires_at: datetime) -> None:
        self.entries[key] = (token, expires_at)
        self.entries.move_to_end(key)
        while len(self.entries) > MAX_DELEGATED_CACHED:
            self.entries.popitem(last=False)

    def forget_org(self, org_id: str) -> None:
        for key in [key for key in self.entries if key[0] == org_id]:
            del self.entries[key]


def product_access(
    scopes: Sequence[str], requested: Sequence[str] = ()
) -> dict[str, ProductAccess]:
    """Each product's access under a grant of ``scopes``; one of the ``requested`` products whose
    scopes Google did not all grant needs the user to connect again."""
    access = {}
    for name, needed in PRODUCT_SCOPES.items():
        missing = missing_scopes(scopes, needed)
        if not missing:
            state, problem = ProductState.GRANTED, None
        elif name in requested:
            state, problem = ProductState.NEEDS_RECONNECT, not_granted_problem(name, missing)
        else:
            state, problem = ProductState.NOT_REQUESTED, None
        access[name] = ProductAccess(
            granted=not missing,
            state=state,
            scopes=list(needed),
            missing_scopes=missing,
            problem=problem,
        )
    return access


def not_granted_problem(product: str, missing: Sequence[str]) -> str:
    return (
        f"Google did not grant {', '.join(missing)}: connect Google for {product} again and "
        "allow every access it asks for"
    )


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


class NotAMember(Forbidden):
    slug, title = "not-a-member", "The user is not a member of this org"


class AccountsService:
    def __init__(
        self,
        repository: AccountsRepository,
        *,
        settings: AccountsSettings,
        clock: Clock,
        vault: Vault,
        oauth: GoogleOAuth,
        delegated: DelegatedTokens,
        directory: OrgDirectory,
        products: ProductStops,
    ) -> None:
        self.repository = repository
        self.settings = settings
        self.clock = clock
        self.vault = vault
        self.oauth = oauth
        self.delegated = delegated
        self.directory = directory
        self.products = products

    # -- the connect flow -------------------------------------------------------------------

    async def start_connect(self, principal: Principal, products: Sequence[str]) -> str:
        unknown = sorted(set(products) - set(PRODUCT_SCOPES))
        if not products or unknown:
            message = f"unknown products: {', '.join(unknown)}" if unknown else "name at least one"
            raise InvalidInput(
                message,
                errors=[
                    FieldError(
                        field="query.products",
                        message=f"{message}; known: {', '.join(PRODUCT_SCOPES)}",
                        code="unknown_product" if unknown else "missing",
                    )
                ],
            )
        scopes = sorted(set(scopes_for(products)) | set(IDENTITY_SCOPES))
        flow = self.oauth.start_flow(scopes, principal.email)
        now = self.clock.now()
        await self.repository.drop_expired_states(now)
        key = state_hash(flow.state)
        await self.repository.add(
            OAuthState(
                state_hash=key,
                org_id=principal.org_id,
                user_id=principal.sub,
                products=sorted(set(products)),
                scopes=scopes,
                code_verifier=self.vault.seal(
                    flow.code_verifier, context=seal_context(OAuthState, "code_verifier", key)
                ),
                created_at=now,
                expires_at=now + timedelta(seconds=self.settings.state_ttl_seconds),
            )
        )
        return flow.authorization_url

    async def complete_connect(self, state: str | None, code: str | None, error: str | None) -> str:
        """Finish a flow; returns where to send the browser. A bad state raises (400)."""
        if not state or len(state) > 200:
            raise InvalidState(
                "the state is missing",
                errors=[FieldError(field="query.state", message="missing", code="missing")],
            )
        pending = await self.repository.take_state(state_hash(state))
        if pending is None or pending.expires_at <= self.clock.now():
            detail = "expired" if pending is not None else "unknown or already used"
            raise InvalidState(
                f"the state is {detail}; start connecting again",
                errors=[FieldError(field="query.state", message=detail, code="invalid")],
            )
        if error or not code:
            return self._outcome("error", reason=error or "missing_code")
        verifier = self.vault.open(
            pending.code_verifier,
            context=seal_context(OAuthState, "code_verifier", pending.state_hash),
        )
        try:
            grant = await self.oauth.exchange_code(code, verifier)
        except OAuthRefused as refused:
            return self._outcome("error", reason=refused.error)
        except AppError:
            return self._outcome("error", reason="google_unavailable")
        google_email = await self.oauth.google_email(grant.access_token)
        connection = await self._store_grant(pending, grant, google_email)
        if connection is None:
            return self._outcome("error", reason="no_refresh_token")
        access = product_access(connection.scopes, connection.requested_products)
        granted = [name for name, product in access.items() if product.granted]
        details = {"products": ",".join(sorted(granted))}
        lacking = sorted(
            name
            for name, product in access.items()
            if product.state is ProductState.NEEDS_RECONNECT
        )
        if lacking:
            details["needs_reconnect"] = ",".join(lacking)
        return self._outcome("connected", **details)

    def _outcome(self, outcome: str, **details: str) -> str:
        return _with_query(self.settings.return_url, {"google": outcome, **details})

    async def _store_grant(
        self, pending: OAuthState, grant: TokenGrant, google_email: str | None
    ) -> GoogleConnection | None:
        now = self.clock.now()
        connection = await self.repository.connection(
            pending.org_id, pending.user_id, for_update=True
        )
        same_account = (
            connection is not None
            and connection.status == ConnectionStatus.CONNECTED
            and connection.google_email == google_email
        )
        # Google's answer names the scopes granted: the user may have unticked some.
        scopes = set(grant.scopes or pending.scopes)
        requested = set(pending.products)
        refresh_token = grant.refresh_token
        if same_account and connection is not None:
            # Google answers every scope of the grant, a product disconnected alone included:
            # only what is asked now, or still held, is taken.
            scopes &= set(pending.scopes)
            scopes |= set(connection.scopes)
            requested |= set(connection.requested_products)
            if refresh_token is None and connection.refresh_token is not None:
                refresh_token = self._open(connection, "refresh_token", connection.refresh_token)
        if refresh_token is None:
            return None
        if connection is None:
            connection = GoogleConnection(
                id=new_id(),
                org_id=pending.org_id,
                user_id=pending.user_id,
                status=ConnectionStatus.CONNECTED,
                connected_at=now,
                updated_at=now,
            )
        connection.google_email = google_email
        connection.status = ConnectionStatus.CONNECTED
        connection.scopes = sorted(scopes)
        connection.requested_products = sorted(requested)
        connection.refresh_token = self._seal(connection, "refresh_token", refresh_token)
        connection.access_token = self._seal(connection, "access_token", grant.access_token)
        connection.access_token_expires_at = grant.expires_at
        connection.last_error = None
        connection.connected_at = now
        connection.updated_at = now
        await self.repository.add(connection)
        await self._publish(GoogleConnected, connection, actor_id=pending.user_id)
        return connection

    # -- status and disconnect --------------------------------------------------------------

    async def status(self, org_id: str, user_id: str, email: str | None) -> ConnectionPublic:
        delegation = await self.repository.delegation(org_id)
        if delegation is not None and _in_domain(email, delegation.domain):
            return ConnectionPublic(
                user_id=user_id,
                status=ConnectionStatus.CONNECTED,
                via=Via.DELEGATION,
                google_email=email,
                products={
                    name: ProductAccess(
                        granted=True, state=ProductState.GRANTED, scopes=list(needed)
                    )
                    for name, needed in PRODUCT_SCOPES.items()
                },
            )
        connection = await self.repository.connection(org_id, user_id)
        if connection is None:
            return ConnectionPublic(
                user_id=user_id, status="not_connected", products=product_access(())
            )
        return self._public(connection)

    async def connections(
        self, org_id: str, *, status: ConnectionStatus | None, after: UUID | None, limit: int
    ) -> tuple[list[ConnectionPublic], UUID | None]:
        """A page of the org's connections and the id to continue after (None: last page)."""
        rows = await self.repository.connections(
            org_id, status=status, after=after, limit=limit + 1
        )
        page = rows[:limit]
        more = page[-1].id if len(rows) > limit else None
        return [self._public(row) for row in page], more

    async def connection_of(self, org_id: str, user_id: str) -> ConnectionPublic:
        connection = await self.repository.connection(org_id, user_id)
        if connection is None:
            raise NotFound("no Google connection for this user")
        return self._public(connection)

    def _public(self, connection: GoogleConnection) -> ConnectionPublic:
        return ConnectionPublic(
            user_id=connection.user_id,
            status=connection.status,
            via=Via.OAUTH,
            google_email=connection.google_email,
            products=product_access(connection.scopes, connection.requested_products),
            scopes=list(connection.scopes),
            last_error=connection.last_error,
            last_used_at=connection.last_used_at,
            connected_at=connection.connected_at,
        )

    async def disconnect(self, org_id: str, user_id: str, actor_id: str) -> None:
        """Each granted product stops what runs at Google while the grant still works
        (``ProductStops``), then the grant is revoked at Google and forgotten. If Google cannot
        be reached for the revocation, nothing is forgotten."""
        # Not locked while the products run: they ask this service for the user's tokens.
        connection = await self.repository.connection(org_id, user_id)
        if connection is None:
            raise NotFound("no Google connection for this user")
        if connection.refresh_token is not None and connection.status != ConnectionStatus.REVOKED:
            await self.products.stop(org_id, user_id, actor_id, granted_products(connection.scopes))
        connection = await self.repository.connection(org_id, user_id, for_update=True)
        if connection is None:
            raise NotFound("no Google connection for this user")
        if connection.refresh_token is not None:
            await self.oauth.revoke(
                self._open(connection, "refresh_token", connection.refresh_token)
            )
        await self._publish(GoogleDisconnected, connection, actor_id=actor_id)
        await self.repository.delete(connection)

    async def disconnect_product(
        self, org_id: str, user_id: str, product: str, actor_id: str
    ) -> None:
        """One product disconnected: it stops what runs at Google while the grant still works,
        then the connection loses the product's scopes (those no other product it grants
        needs), so no token is issued for them again. Google keeps them in the grant (a refresh
        token cannot drop one scope) until a full disconnect revokes it. The last product
        disconnected is a full disconnect."""
        if product not in PRODUCT_SCOPES:
            raise InvalidInput(
                f"unknown product: {product}",
                errors=[
                    FieldError(
                        field="path.product",
                        message=f"unknown product; known: {', '.join(PRODUCT_SCOPES)}",
                        code="unknown_product",
                    )
                ],
            )
        connection = await self.repository.connection(org_id, user_id)
        if connection is None or product not in granted_products(connection.scopes):
            raise NotFound(f"Google is not connected for {product} for this user")
        remaining = [name for name in granted_products(connection.scopes) if name != product]
        if not remaining:
            await self.disconnect(org_id, user_id, actor_id)
            return
        if connection.refresh_token is not None and connection.status != ConnectionStatus.REVOKED:
            await self.products.stop(org_id, user_id, actor_id, [product])
        connection = await self.repository.connection(org_id, user_id, for_update=True)
        if connection is None or product not in granted_products(connection.scopes):
            raise NotFound(f"Google is not connected for {product} for this user")
        still_needed = set(IDENTITY_SCOPES) | set(scopes_for(remaining))
        dropped = set(PRODUCT_SCOPES[product]) - still_needed
        connection.scopes = sorted(set(connection.scopes) - dropped)
        connection.requested_products = sorted(set(connection.requested_products) - {product})
        connection.updated_at = self.clock.now()
        await self.repository.add(connection)
        await self._publish(
            GoogleDisconnected,
            connection,
            actor_id=actor_id,
            products=[product],
            scopes=sorted(dropped),
            connection_ended=False,
        )

    async def user_deactivated(
        self, deactivation: UserDeactivation, user_id: str
    ) -> dict[str, int]:
        """The accounts part of the lifecycle contract: the user's Google grant revoked at
        Google and forgotten (as a disconnect by the admin who deactivated them). Idempotent:
        once forgotten, nothing is left to revoke."""
        org_id = deactivation.org_id
        if await self.repository.connection(org_id, user_id) is None:
            return {"grants": 0}
        await self.disconnect(org_id, user_id, deactivation.actor_id)
        return {"grants": 1}

    async def user_google_data_deleted(
        self, deletion: GoogleDataDeletion, user_id: str
    ) -> dict[str, int]:
        """The accounts part of deleting a user's Google data: the grant revoked at Google,
        then forgotten with their sync health and pending sign-ins. Nothing is published: the
        other services have already deleted what the grant gave them. If Google cannot be
        reached, nothing is forgotten. Idempotent."""
        org_id = deletion.org_id
        connection = await self.repository.connection(org_id, user_id, for_update=True)
        if connection is not None and connection.refresh_token is not None:
            await self.oauth.revoke(
                self._open(connection, "refresh_token", connection.refresh_token)
            )
        deleted = await erase_user_rows(
            self.repository.session, AccountsModel.metadata, org_id, user_id
        )
        grants = deleted.pop("google_connections", 0)
        events = await erase_events(self.repository.session, outbox, [user_id])
        return {"grants": grants, **deleted, **({"outbox_events": events} if events else {})}

    async def org_offboarded(self, offboarding: OrgOffboarding, org_id: str) -> dict[str, int]:
        """The accounts part of an org's offboarding: every grant of the org revoked at Google,
        then every row of the org forgotten (grants, delegation, sync health, sign-ins). If
        Google cannot be reached, nothing is forgotten. Idempotent."""
        for connection in await self.repository.org_connections(org_id):
            if connection.refresh_token is not None:
                await self.oauth.revoke(
                    self._open(connection, "refresh_token", connection.refresh_token)
                )
        deleted = await erase_org_rows(
            self.repository.session, AccountsModel.metadata, org_id, outbox=outbox
        )
        grants = deleted.pop("google_connections", 0)
        return {"grants": grants, **deleted}

    # -- access tokens ----------------------------------------------------------------------

    async def access_token(self, request: TokenRequest) -> TokenAnswer | AppError:
        delegation = await self.repository.delegation(request.org_id)
        if delegation is not None and _in_domain(request.email, delegation.domain):
            await self._member_of_org(request)
            return await self._delegated_token(delegation, request)
        connection = await self.repository.connection(
            request.org_id, request.user_id, for_update=True
        )
        if connection is None:
            raise GoogleNotConnected(
                "this user has not connected Google",
                errors=[_connect_hint(products_needing(request.scopes), "not_connected")],
            )
        if connection.status == ConnectionStatus.REVOKED or connection.refresh_token is None:
            raise GoogleReconnectRequired(
                "Google revoked this user's access; they must connect Google again",
                errors=[_connect_hint(granted_products(connection.scopes), "revoked")],
            )
        missing = missing_scopes(connection.scopes, request.scopes)
        if missing:
            raise GoogleNotConnected(
                f"Google is not connected for the scopes {', '.join(missing)}",
                errors=[_connect_hint(products_needing(missing), "scopes_not_granted")],
            )
        now = self.clock.now()
        margin = timedelta(seconds=self.settings.refresh_margin_seconds)
        expires_at = connection.access_token_expires_at
        if (
            request.force_refresh
            or connection.access_token is None
            or expires_at is None
            or expires_at - margin <= now
        ):
            refreshed = await self._refresh(connection)
            if isinstance(refreshed, AppError):
                return refreshed
            token, expires_at = refreshed
        else:
            token = self._open(connection, "access_token", connection.access_token)
        assert expires_at is not None
        if connection.last_used_at is None or now - connection.last_used_at >= (
            LAST_USED_GRANULARITY
        ):
            connection.last_used_at = now
            await self.repository.add(connection)
        return TokenAnswer(
            access_token=token, expires_at=expires_at, scopes=connection.scopes, via=Via.OAUTH
        )

    async def _refresh(self, connection: GoogleConnection) -> tuple[str, datetime] | AppError:
        assert connection.refresh_token is not None
        refresh_token = self._open(connection, "refresh_token", connection.refresh_token)
        try:
            grant = await self.oauth.refresh(refresh_token)
        except OAuthRefused as refused:
            if refused.error != "invalid_grant":
                raise GoogleCallError(
                    f"Google's token endpoint refused the refresh: {refused.error}",
                    errors=[
                        FieldError(field="google", message=refused.description, code=refused.error)
                    ],
                ) from None
            return await self._mark_revoked(connection, refused)
        now = self.clock.now()
        connection.access_token = self._seal(connection, "access_token", grant.access_token)
        connection.access_token_expires_at = grant.expires_at
        connection.last_error = None
        connection.updated_at = now
        await self.repository.add(connection)
        return grant.access_token, grant.expires_at

    async def _mark_revoked(
        self, connection: GoogleConnection, refused: OAuthRefused
    ) -> GoogleReconnectRequired:
        reason = f"{refused.error}: {refused.description}".strip(": ")
        connection.status = ConnectionStatus.REVOKED
        connection.refresh_token = None
        connection.access_token = None
        connection.access_token_expires_at = None
        connection.last_error = f"Google refused the stored grant ({reason}); reconnect Google"
        connection.updated_at = self.clock.now()
        await self.repository.add(connection)
        await self._publish(GoogleRevoked, connection, actor_id=None, reason=reason)
        return GoogleReconnectRequired(
            "Google revoked this user's access; they must connect Google again",
            errors=[_connect_hint(granted_products(connection.scopes), "revoked")],
        )

    async def _member_of_org(self, request: TokenRequest) -> None:
        """Delegation impersonates an email: only that of an active user of the org asked for."""
        assert request.email is not None
        user = await self.directory.user(request.org_id, request.user_id)
        if user is None or (user.email or "").lower() != request.email.lower():
            raise NotAMember(
                "delegated tokens are issued only for an active user of the org, by their email"
            )

    async def _delegated_token(
        self, delegation: GoogleDelegation, request: TokenRequest
    ) -> TokenAnswer:
        assert request.email is not None
        subject = request.email.lower()
        scopes = frozenset(request.scopes)
        key = (delegation.org_id, subject, scopes)
        usable_after = self.clock.now() + timedelta(seconds=self.settings.refresh_margin_seconds)
        async with self.delegated.lock:
            cached = None if request.force_refresh else self.delegated.get(key, usable_after)
        if cached is not None:
            token, expires_at = cached, self.delegated.entries[key][1]
        else:
            private_key = self.vault.open(
                delegation.private_key,
                context=seal_context(GoogleDelegation, "private_key", delegation.id),
            )
            try:
                grant = await self.oauth.delegated(
                    client_email=delegation.client_email,
                    private_key_id=delegation.private_key_id,
                    private_key_pem=private_key,
                    subject=subject,
                    scopes=sorted(scopes),
                )
            except OAuthRefused as refused:
                raise GoogleDelegationRefused(
                    f"Google refused the delegated token: {refused.error}",
                    errors=[
                        FieldError(
                            field="delegation", message=refused.description, code=refused.error
                        )
                    ],
                ) from None
            token, expires_at = grant.access_token, grant.expires_at
            self.delegated.put(key, token, expires_at)
        return TokenAnswer(
            access_token=token, expires_at=expires_at, scopes=sorted(scopes), via=Via.DELEGATION
        )

    # -- domain-wide delegation -------------------------------------------------------------

    async def delegation(self, org_id: str) -> DelegationPublic:
        delegation = await self.repository.delegation(org_id)
        if delegation is None:
            raise NotFound("domain-wide delegation is not configured")
        return _delegation_public(delegation)

    async def configure_delegation(
        self, principal: Principal, config: DelegationIn
    ) -> DelegationPublic:
        key = config.service_account_key
        try:
            parsed = RSAKey.import_key(key.private_key)
        except (JoseError, ValueError, TypeError):
            parsed = None
        if parsed is None or not parsed.is_private:
            raise InvalidInput(
                "the service account key holds no RSA private key",
                errors=[
                    FieldError(
                        field="body.service_account_key.private_key",
                        message="not an RSA private key in PEM",
                        code="invalid_key",
                    )
                ],
            )
        now = self.clock.now()
        delegation = await self.repository.delegation(principal.org_id)
        if delegation is None:
            delegation = GoogleDelegation(
                org_id=principal.org_id,
                id=new_id(),
                client_email="",
                private_key_id="",
                private_key=b"",
                domain="",
                configured_by=principal.sub,
                created_at=now,
                updated_at=now,
            )
        delegation.client_email = key.client_email.lower()
        delegation.private_key_id = key.private_key_id
        delegation.private_key = self.vault.seal(
            key.private_key, context=seal_context(GoogleDelegation, "private_key", delegation.id)
        )
        delegation.domain = config.domain
        delegation.configured_by = principal.sub
        delegation.updated_at = now
        await self.repository.add(delegation)
        self.delegated.forget_org(principal.org_id)
        return _delegation_public(delegation)

    async def remove_delegation(self, org_id: str) -> None:
        delegation = await self.repository.delegation(org_id)
        if delegation is None:
            raise NotFound("domain-wide delegation is not configured")
        await self.repository.delete(delegation)
        self.delegated.forget_org(org_id)

    # -- helpers ----------------------------------------------------------------------------

    def _seal(self, connection: GoogleConnection, column: str, value: str) -> bytes:
        return self.vault.seal(value, context=seal_context(GoogleConnection, column, connection.id))

    def _open(self, connection: GoogleConnection, column: str, sealed: bytes) -> str:
        return self.vault.open(
            sealed, context=seal_context(GoogleConnection, column, connection.id)
        )

    async def _publish(
        self,
        contract: type[GoogleConnectionData],
        connection: GoogleConnection,
        *,
        actor_id: str | None,
        **extra: Any,
    ) -> None:
        values: dict[str, Any] = {
            "products": granted_products(connection.scopes),
            "scopes": list(connection.scopes),
            **extra,
        }
        data = contract(
            connection_id=str(connection.id),
            user_id=connection.user_id,
            google_email=connection.google_email,
            **values,
        )
        event = new_event(data, org_id=connection.org_id, actor_id=actor_id, time=self.clock.now())
        await add_event(self.repository.session, outbox, event)


def _in_domain(email: str | None, domain: str) -> bool:
    return email is not None and email.lower().rpartition("@")[2] == domain


def _connect_hint(products: Sequence[str], code: str) -> FieldError:
    named = ", ".join(products) or "the needed products"
    return FieldError(field="google", message=f"connect Google for: {named}", code=code)


def _delegation_public(delegation: GoogleDelegation) -> DelegationPublic:
    return DelegationPublic(
        domain=delegation.domain,
        client_email=delegation.client_email,
        private_key_id=delegation.private_key_id,
        configured_by=delegation.configured_by,
        updated_at=delegation.updated_at,
    )
