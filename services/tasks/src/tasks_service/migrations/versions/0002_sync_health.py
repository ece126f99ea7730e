"""sync health

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Poll requests are named by SyncKey now; the next periodic poll asks again for every user.
    op.execute('DELETE FROM tasks.work_requests')
    op.create_table('sync_health',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False, comment='What its events name it by'),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error_type', sa.String(length=200), nullable=True),
    sa.Column('last_error_message', sa.Text(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'user_id', name=op.f('pk_sync_health')),
    sa.UniqueConstraint('id', name=op.f('uq_sync_health_id')),
    schema='tasks'
    )
    op.create_index('ix_sync_health_state', 'sync_health', ['state'], unique=False, schema='tasks')


def downgrade() -> None:
    op.drop_index('ix_sync_health_state', table_name='sync_health', schema='tasks')
    op.drop_table('sync_health', schema='tasks')
