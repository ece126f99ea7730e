"""drive explicit shares, share domains, push channels, change cursors

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('roots', sa.Column('share_domains', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False), schema='drive')
    op.create_table('shares',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('folder_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('notify', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['folder_id'], ['drive.record_folders.id'], name=op.f('fk_shares_folder_id_record_folders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shares')),
    sa.UniqueConstraint('folder_id', 'email', name=op.f('uq_shares_folder_id_email')),
    schema='drive'
    )
    op.create_table('change_cursors',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('page_token', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_change_cursors')),
    schema='drive'
    )
    op.create_table('push_channels',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('user_email', sa.String(length=320), nullable=True, comment='For domain-wide delegation'),
    sa.Column('resource', sa.String(length=500), nullable=False, comment='What it watches, e.g. a calendar'),
    sa.Column('resource_id', sa.String(length=300), nullable=False, comment="Google's id of the watched"),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('suspended', sa.Boolean(), server_default=sa.text('false'), nullable=False, comment="Stopped because the user's Google access ended: opened again on reconnect"),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_channels')),
    schema='drive'
    )
    op.create_index('ix_push_channels_active_expiry', 'push_channels', ['expires_at'], unique=False, schema='drive', postgresql_where=sa.text('stopped_at IS NULL'))
    op.create_index('ix_push_channels_owner', 'push_channels', ['org_id', 'user_id', 'resource'], unique=False, schema='drive')


def downgrade() -> None:
    op.drop_index('ix_push_channels_owner', table_name='push_channels', schema='drive')
    op.drop_index('ix_push_channels_active_expiry', table_name='push_channels', schema='drive', postgresql_where=sa.text('stopped_at IS NULL'))
    op.drop_table('push_channels', schema='drive')
    op.drop_table('change_cursors', schema='drive')
    op.drop_table('shares', schema='drive')
    op.drop_column('roots', 'share_domains', schema='drive')
