"""leads

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('leads',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('company_name', sa.String(length=300), nullable=True),
    sa.Column('owner_id', sa.String(length=255), nullable=False),
    sa.Column('team_id', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('estimated_value', sa.Numeric(precision=16, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('tags', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('next_step', sa.Text(), nullable=True),
    sa.Column('sla_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name=op.f('ck_leads_priority')),
    sa.CheckConstraint("status IN ('new', 'contacted', 'qualified', 'disqualified', 'converted')", name=op.f('ck_leads_status')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_leads_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leads')),
    schema='crm'
    )
    op.create_index('ix_leads_org_created', 'leads', ['org_id', 'created_at', 'id'], unique=False, schema='crm')
    op.create_index('ix_leads_org_owner', 'leads', ['org_id', 'owner_id'], unique=False, schema='crm')
    op.create_index('ix_leads_org_team', 'leads', ['org_id', 'team_id'], unique=False, schema='crm')
    op.create_index('ix_leads_org_updated', 'leads', ['org_id', 'updated_at', 'id'], unique=False, schema='crm')


def downgrade() -> None:
    op.drop_index('ix_leads_org_updated', table_name='leads', schema='crm')
    op.drop_index('ix_leads_org_team', table_name='leads', schema='crm')
    op.drop_index('ix_leads_org_owner', table_name='leads', schema='crm')
    op.drop_index('ix_leads_org_created', table_name='leads', schema='crm')
    op.drop_table('leads', schema='crm')
