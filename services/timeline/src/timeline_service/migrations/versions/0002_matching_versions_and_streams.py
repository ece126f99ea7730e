"""matching, versions and streams

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
    op.create_table('access_versions',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_access_versions')),
    schema='timeline'
    )
    op.create_table('contact_emails',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('contact_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'email', 'contact_id', name=op.f('pk_contact_emails')),
    schema='timeline'
    )
    op.create_index('ix_contact_emails_contact', 'contact_emails', ['org_id', 'contact_id'], unique=False, schema='timeline')
    op.create_table('crm_records',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'record_type', 'record_id', name=op.f('pk_crm_records')),
    schema='timeline'
    )
    op.create_table('record_contacts',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('contact_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'record_type', 'record_id', 'contact_id', name=op.f('pk_record_contacts')),
    schema='timeline'
    )
    op.create_index('ix_record_contacts_contact', 'record_contacts', ['org_id', 'contact_id'], unique=False, schema='timeline')
    op.create_table('record_versions',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'record_type', 'record_id', name=op.f('pk_record_versions')),
    schema='timeline'
    )
    op.create_table('stream_tickets',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('principal', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_stream_tickets')),
    schema='timeline'
    )
    op.create_index(op.f('ix_stream_tickets_expires_at'), 'stream_tickets', ['expires_at'], unique=False, schema='timeline')
    op.add_column('items', sa.Column('private', sa.Boolean(), nullable=False, server_default=sa.false()), schema='timeline')
    op.add_column('items', sa.Column('sharing', sa.String(length=20), nullable=True), schema='timeline')
    op.add_column('items', sa.Column('owner_id', sa.String(length=255), nullable=True), schema='timeline')
    # Items written before these columns existed keep their hints in ``visibility``.
    op.execute(
        "UPDATE timeline.items SET private = coalesce((visibility->>'private')::boolean, false), "
        "sharing = visibility->>'sharing', owner_id = visibility->>'owner_id'"
    )
    op.alter_column('items', 'private', server_default=None, schema='timeline')
    op.create_index('ix_items_participants', 'items', ['participants'], unique=False, schema='timeline', postgresql_using='gin')
    op.add_column('links', sa.Column('explicit', sa.Boolean(), nullable=False, server_default=sa.true()), schema='timeline')
    op.add_column('links', sa.Column('change_version', sa.BigInteger(), nullable=False, server_default='0'), schema='timeline')
    op.alter_column('links', 'explicit', server_default=None, schema='timeline')
    op.alter_column('links', 'change_version', server_default=None, schema='timeline')
    op.create_index('ix_links_record_change', 'links', ['org_id', 'record_type', 'record_id', 'change_version'], unique=False, schema='timeline')


def downgrade() -> None:
    op.drop_index('ix_links_record_change', table_name='links', schema='timeline')
    op.drop_column('links', 'change_version', schema='timeline')
    op.drop_column('links', 'explicit', schema='timeline')
    op.drop_index('ix_items_participants', table_name='items', schema='timeline', postgresql_using='gin')
    op.drop_column('items', 'owner_id', schema='timeline')
    op.drop_column('items', 'sharing', schema='timeline')
    op.drop_column('items', 'private', schema='timeline')
    op.drop_index(op.f('ix_stream_tickets_expires_at'), table_name='stream_tickets', schema='timeline')
    op.drop_table('stream_tickets', schema='timeline')
    op.drop_table('record_versions', schema='timeline')
    op.drop_index('ix_record_contacts_contact', table_name='record_contacts', schema='timeline')
    op.drop_table('record_contacts', schema='timeline')
    op.drop_table('crm_records', schema='timeline')
    op.drop_index('ix_contact_emails_contact', table_name='contact_emails', schema='timeline')
    op.drop_table('contact_emails', schema='timeline')
    op.drop_table('access_versions', schema='timeline')
