"""automation rules, and jobs a rule made

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rules',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('stages', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.Column('sender_domains', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('file_types', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('min_size', sa.BigInteger(), nullable=True),
    sa.Column('max_size', sa.BigInteger(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('paused_reason', sa.String(length=500), nullable=True),
    sa.Column('acting_user_id', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules')),
    schema='automation'
    )
    op.create_index(op.f('ix_rules_org_id'), 'rules', ['org_id'], unique=False, schema='automation')
    op.add_column('attachment_jobs', sa.Column('rule_id', sa.Uuid(), nullable=True), schema='automation')
    op.add_column('attachment_jobs', sa.Column('source_identity', sa.String(length=300), nullable=True), schema='automation')
    op.add_column('attachment_jobs', sa.Column('source_subject', sa.String(length=500), nullable=True), schema='automation')
    op.add_column('attachment_jobs', sa.Column('source_sender', sa.String(length=320), nullable=True), schema='automation')
    op.create_foreign_key(
        op.f('fk_attachment_jobs_rule_id_rules'), 'attachment_jobs', 'rules', ['rule_id'], ['id'],
        source_schema='automation', referent_schema='automation', ondelete='SET NULL',
    )
    op.create_index(
        'uq_attachment_jobs_rule_run', 'attachment_jobs',
        ['rule_id', 'source_identity', 'record_type', 'record_id'], unique=True,
        schema='automation', postgresql_where=sa.text('rule_id IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index('uq_attachment_jobs_rule_run', table_name='attachment_jobs', schema='automation')
    op.drop_constraint(op.f('fk_attachment_jobs_rule_id_rules'), 'attachment_jobs', schema='automation', type_='foreignkey')
    for column in ('source_sender', 'source_subject', 'source_identity', 'rule_id'):
        op.drop_column('attachment_jobs', column, schema='automation')
    op.drop_index(op.f('ix_rules_org_id'), table_name='rules', schema='automation')
    op.drop_table('rules', schema='automation')
