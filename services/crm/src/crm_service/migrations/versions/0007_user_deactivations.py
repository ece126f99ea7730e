"""user deactivations: a job row per deactivation, its records and each service's part

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('user_deactivations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('requested_by', sa.String(length=255), nullable=False),
    sa.Column('new_owner_id', sa.String(length=255), nullable=False),
    sa.Column('audit_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('records_reassigned', sa.Integer(), nullable=False),
    sa.Column('records_done', sa.Boolean(), nullable=False),
    sa.Column('parts', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'completed')", name=op.f('ck_user_deactivations_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_deactivations')),
    schema='crm'
    )
    op.create_index('ix_user_deactivations_user', 'user_deactivations', ['org_id', 'user_id', 'created_at'], unique=False, schema='crm')


def downgrade() -> None:
    op.drop_index('ix_user_deactivations_user', table_name='user_deactivations', schema='crm')
    op.drop_table('user_deactivations', schema='crm')
