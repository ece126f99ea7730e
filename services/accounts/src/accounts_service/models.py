"""Accounts tables (schema ``accounts``). Every secret column holds a vault-sealed value."""

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from pipedesk_common.db import schema_registry
from pipedesk_common.inbox import inbox_tables
from pipedesk_common.lifecycle_answers import lifecycle_answers_table
from pipedesk_common.outbox import outbox_table


class AccountsModel(SQLModel, registry=schema_registry("accounts")):
    """Base of every accounts table: schema ``accounts``, migrated on its own."""


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    REVOKED = "revoked"


class GoogleConnection(AccountsModel, table=True):
    """One user's Google grant: the refresh token and the current access token, sealed."""

    __tablename__ = "google_connections"
    __table_args__ = (
        UniqueConstraint("org_id", "user_id"),
        CheckConstraint("status IN ('connected', 'revoked')", name="status"),
        CheckConstraint(
            "status = 'revoked' OR refresh_token IS NOT NULL", name="connected_has_token"
        ),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    user_id: str = Field(sa_type=String(255))
    google_email: str | None = Field(default=None, sa_type=String(320))
    status: str = Field(sa_type=String(20))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    # The products the user asked to connect; one whose scopes Google did not grant needs a
    # reconnect.
    requested_products: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"),
    )
    refresh_token: bytes | None = Field(default=None, sa_type=LargeBinary)
    access_token: bytes | None = Field(default=None, sa_type=LargeBinary)
    access_token_expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_error: str | None = Field(default=None, sa_type=Text)
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    connected_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class OAuthState(AccountsModel, table=True):
    """A connect flow in progress: single-use, expiring; only the state's hash is kept."""

    __tablename__ = "oauth_states"

    state_hash: str = Field(primary_key=True, sa_type=String(64))
    org_id: str = Field(sa_type=String(255))
    user_id: str = Field(sa_type=String(255))
    products: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    scopes: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    code_verifier: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)


class GoogleDelegation(AccountsModel, table=True):
    """An org's domain-wide delegation: a service account allowed to act for its domain's users."""

    __tablename__ = "google_delegations"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    id: UUID = Field(unique=True)
    client_email: str = Field(sa_type=String(320))
    private_key_id: str = Field(sa_type=String(100))
    private_key: bytes = Field(sa_type=LargeBinary)
    domain: str = Field(sa_type=String(255))
    configured_by: str = Field(sa_type=String(255))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class SyncHealth(AccountsModel, table=True):
    """How a Google service's sync of a user's account stands: the replica of what each Google
    service publishes (``<product>.sync.state_changed``), newest version kept."""

    __tablename__ = "sync_health"
    __table_args__ = (Index("ix_sync_health_org_state", "org_id", "state"),)

    org_id: str = Field(primary_key=True, sa_type=String(255))
    user_id: str = Field(primary_key=True, sa_type=String(255))
    product: str = Field(primary_key=True, sa_type=String(20))
    state: str = Field(sa_type=String(20))
    last_success_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_error_type: str | None = Field(default=None, sa_type=String(200))
    last_error_message: str | None = Field(default=None, sa_type=Text)
    consecutive_failures: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    changed_at: datetime = Field(sa_type=DateTime(timezone=True))
    version: int


outbox = outbox_table(AccountsModel.metadata)
inbox = inbox_tables(AccountsModel.metadata)
lifecycle_answers = lifecycle_answers_table(AccountsModel.metadata)

# Where each sealed column's associated data comes from: (table, column) → the row's key column.
SEALED_COLUMNS: tuple[tuple[type[AccountsModel], str, str], ...] = (
    (GoogleConnection, "refresh_token", "id"),
    (GoogleConnection, "access_token", "id"),
    (OAuthState, "code_verifier", "state_hash"),
    (GoogleDelegation, "private_key", "id"),
)


def seal_context(model: type[AccountsModel], column: str, row_key: object) -> str:
    """The vault context of one sealed cell: a ciphertext opens only in its own row and column."""
    return f"{model.__tablename__}.{column}:{row_key}"
