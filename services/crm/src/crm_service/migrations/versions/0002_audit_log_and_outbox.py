"""audit log and outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
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
    op.create_table('audit_log',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=False),
    sa.Column('changes', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    schema='crm'
    )
    op.create_index('ix_audit_log_org_time', 'audit_log', ['org_id', 'occurred_at'], unique=False, schema='crm')
    op.create_index('ix_audit_log_record', 'audit_log', ['org_id', 'record_type', 'record_id', 'occurred_at'], unique=False, schema='crm')
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
    schema='crm'
    )
    op.create_index('ix_outbox_pending', 'outbox', ['id'], unique=False, schema='crm', postgresql_where=sa.text('status = 0'))
    op.create_index('ix_outbox_sent_at', 'outbox', ['sent_at'], unique=False, schema='crm', postgresql_where=sa.text('status = 1'))
    # The audit log is append-only, whatever code or person holds the connection.
    op.execute("""
        CREATE FUNCTION crm.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'crm.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    op.execute("""
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON crm.audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION crm.refuse_audit_change()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_append_only ON crm.audit_log")
    op.execute("DROP FUNCTION crm.refuse_audit_change()")
    op.drop_index('ix_outbox_sent_at', table_name='outbox', schema='crm', postgresql_where=sa.text('status = 1'))
    op.drop_index('ix_outbox_pending', table_name='outbox', schema='crm', postgresql_where=sa.text('status = 0'))
    op.drop_table('outbox', schema='crm')
    op.drop_index('ix_audit_log_record', table_name='audit_log', schema='crm')
    op.drop_index('ix_audit_log_org_time', table_name='audit_log', schema='crm')
    op.drop_table('audit_log', schema='crm')
