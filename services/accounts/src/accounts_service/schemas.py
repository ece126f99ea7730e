"""API shapes of the accounts service. No shape carries a refresh token or a private key."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from pipedesk_common.events.sync import SyncState


class ConnectStart(BaseModel):
    authorization_url: str = Field(description="Send the browser here (Google's consent screen)")


class Via(StrEnum):
    OAUTH = "oauth"
    DELEGATION = "delegation"


class ProductState(StrEnum):
    GRANTED = "granted"
    NEEDS_RECONNECT = "needs_reconnect"
    NOT_REQUESTED = "not_requested"


class ProductAccess(BaseModel):
    granted: bool
    state: ProductState = Field(
        description="`granted`; `needs_reconnect` (asked for, but Google did not grant every "
        "scope it needs: the user unticked some on the consent screen); `not_requested`"
    )
    scopes: list[str] = Field(description="The scopes this product needs")
    missing_scopes: list[str] = Field(
        default_factory=list, description="Needed scopes the connection's grant does not cover"
    )
    problem: str | None = Field(None, description="What the user must do, when not granted")


class ConnectionPublic(BaseModel):
    user_id: str
    status: str = Field(description="`connected`, `revoked` (reconnect needed) or `not_connected`")
    via: Via | None = Field(None, description="How tokens are obtained for this user")
    google_email: str | None = None
    products: dict[str, ProductAccess]
    scopes: list[str] = Field(default_factory=list, description="Every scope granted")
    last_error: str | None = None
    last_used_at: datetime | None = None
    connected_at: datetime | None = None


Scope = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[\x21-\x7e]+$")]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: str = Field(min_length=1, max_length=255)
    user_id: str = Field(min_length=1, max_length=255)
    email: str | None = Field(
        None,
        min_length=3,
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="The user's email: the Workspace user to impersonate under delegation",
    )
    scopes: list[Scope] = Field(min_length=1, max_length=50)
    force_refresh: bool = Field(
        False, description="Google refused the last token (401): get a new one"
    )


class TokenAnswer(BaseModel):
    access_token: str
    expires_at: AwareDatetime
    scopes: list[str]
    via: Via


class ServiceAccountKey(BaseModel):
    """The JSON key file Google gives for a service account (other members are ignored)."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(pattern=r"^service_account$")
    client_email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    private_key_id: str = Field(min_length=1, max_length=100)
    private_key: str = Field(min_length=100, max_length=10_000)


class DelegationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(
        min_length=3,
        max_length=255,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$",
        description="The Workspace domain whose users the service account may impersonate",
    )
    service_account_key: ServiceAccountKey


class DelegationPublic(BaseModel):
    domain: str
    client_email: str
    private_key_id: str
    configured_by: str
    updated_at: datetime


class SyncProblemPublic(BaseModel):
    type: str = Field(
        description="The problem type, e.g. `urn:pipedesk:problem:google-unavailable`"
    )
    message: str


class ProductHealthPublic(BaseModel):
    product: str = Field(description="calendar, tasks…")
    state: SyncState = Field(
        description="`idle`, `syncing`, `backing_off` (Google asked to slow down or is away; "
        "retried later), `failing` (keeps failing; retried later), `needs_reconnect` (nothing "
        "runs until the user connects Google again)"
    )
    last_success_at: AwareDatetime | None = Field(description="When a sync last completed")
    last_error: SyncProblemPublic | None = Field(
        description="The last failure, until a sync succeeds"
    )
    consecutive_failures: int
    next_attempt_at: AwareDatetime | None = Field(
        description="When the next sync is due after failures"
    )
    changed_at: AwareDatetime | None = Field(
        description="When the state last changed (none: no sync has run yet)"
    )


class AccountHealthPublic(BaseModel):
    user_id: str
    products: list[ProductHealthPublic]


class ResyncStarted(BaseModel):
    user_id: str
    product: str
    syncs: int = Field(
        description="How many syncs the product's service started (one per resource)"
    )
