"""Google connections, OAuth states, delegations and the outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-25 21:10:20.742943
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('google_connections',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('google_email', sa.String(length=320), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('scopes', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('refresh_token', sa.LargeBinary(), nullable=True),
    sa.Column('access_token', sa.LargeBinary(), nullable=True),
    sa.Column('access_token_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('connected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status = 'revoked' OR refresh_token IS NOT NULL", name=op.f('ck_google_connections_connected_has_token')),
    sa.CheckConstraint("status IN ('connected', 'revoked')", name=op.f('ck_google_connections_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_google_connections')),
    sa.UniqueConstraint('org_id', 'user_id', name=op.f('uq_google_connections_org_id_user_id')),
    schema='accounts'
    )
    op.create_table('google_delegations',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('client_email', sa.String(length=320), nullable=False),
    sa.Column('private_key_id', sa.String(length=100), nullable=False),
    sa.Column('private_key', sa.LargeBinary(), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('configured_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_google_delegations')),
    sa.UniqueConstraint('id', name=op.f('uq_google_delegations_id')),
    schema='accounts'
    )
    op.create_table('oauth_states',
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('products', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('scopes', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('code_verifier', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('state_hash', name=op.f('pk_oauth_states')),
    schema='accounts'
    )
    op.create_index(op.f('ix_oauth_states_expires_at'), 'oauth_states', ['expires_at'], unique=False, schema='accounts')
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('routing_key', sa.String(length=255), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.SmallInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_event_id')),
    schema='accounts'
    )
    op.create_index('ix_outbox_pending', 'outbox', ['id'], unique=False, schema='accounts', postgresql_where=sa.text('status = 0'))
    op.create_index('ix_outbox_sent_at', 'outbox', ['sent_at'], unique=False, schema='accounts', postgresql_where=sa.text('status = 1'))


def downgrade() -> None:
    op.drop_index('ix_outbox_sent_at', table_name='outbox', schema='accounts', postgresql_where=sa.text('status = 1'))
    op.drop_index('ix_outbox_pending', table_name='outbox', schema='accounts', postgresql_where=sa.text('status = 0'))
    op.drop_table('outbox', schema='accounts')
    op.drop_index(op.f('ix_oauth_states_expires_at'), table_name='oauth_states', schema='accounts')
    op.drop_table('oauth_states', schema='accounts')
    op.drop_table('google_delegations', schema='accounts')
    op.drop_table('google_connections', schema='accounts')
