"""data deletions: a job row per deletion on request (a user's Google data, an org), its parts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('data_deletions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('scope', sa.String(length=10), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('requested_by', sa.String(length=255), nullable=False),
    sa.Column('audit_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('parts', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'completed')", name=op.f('ck_data_deletions_status')),
    sa.CheckConstraint("scope IN ('user', 'org')", name=op.f('ck_data_deletions_scope')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_deletions')),
    schema='crm'
    )
    op.create_index('ix_data_deletions_subject', 'data_deletions', ['org_id', 'scope', 'user_id', 'created_at'], unique=False, schema='crm')


def downgrade() -> None:
    op.drop_index('ix_data_deletions_subject', table_name='data_deletions', schema='crm')
    op.drop_table('data_deletions', schema='crm')
