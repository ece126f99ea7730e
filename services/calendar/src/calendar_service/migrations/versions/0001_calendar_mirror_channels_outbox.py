"""calendar mirror, channels, outbox

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('access_replica',
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('owner_id', sa.String(length=255), nullable=True),
    sa.Column('team_id', sa.String(length=255), nullable=True),
    sa.Column('members', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('record_type', 'record_id', name=op.f('pk_access_replica')),
    schema='calendar'
    )
    op.create_table('calendars',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('user_email', sa.String(length=320), nullable=True),
    sa.Column('google_id', sa.String(length=500), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=True),
    sa.Column('primary', sa.Boolean(), nullable=False),
    sa.Column('sync_token', sa.Text(), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendars')),
    sa.UniqueConstraint('org_id', 'user_id', 'google_id', name=op.f('uq_calendars_org_id_user_id_google_id')),
    schema='calendar'
    )
    op.create_table('entity_versions',
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('entity', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'entity', 'key', name=op.f('pk_entity_versions')),
    schema='calendar'
    )
    op.create_table('idempotency_keys',
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_idempotency_keys')),
    schema='calendar'
    )
    op.create_index('ix_idempotency_keys_created_at', 'idempotency_keys', ['created_at'], unique=False, schema='calendar')
    op.create_table('inbox',
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id', name=op.f('pk_inbox')),
    schema='calendar'
    )
    op.create_table('job_schedule',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_schedule')),
    schema='calendar'
    )
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
    schema='calendar'
    )
    op.create_index('ix_outbox_pending', 'outbox', ['id'], unique=False, schema='calendar', postgresql_where=sa.text('status = 0'))
    op.create_index('ix_outbox_sent_at', 'outbox', ['sent_at'], unique=False, schema='calendar', postgresql_where=sa.text('status = 1'))
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
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_channels')),
    schema='calendar'
    )
    op.create_index('ix_push_channels_active_expiry', 'push_channels', ['expires_at'], unique=False, schema='calendar', postgresql_where=sa.text('stopped_at IS NULL'))
    op.create_index('ix_push_channels_owner', 'push_channels', ['org_id', 'user_id', 'resource'], unique=False, schema='calendar')
    op.create_table('work_requests',
    sa.Column('key', sa.String(length=500), nullable=False),
    sa.Column('pending', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_work_requests')),
    schema='calendar'
    )
    op.create_index('ix_work_requests_pending', 'work_requests', ['key'], unique=False, schema='calendar', postgresql_where=sa.text('pending'))
    op.create_table('events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('calendar_id', sa.Uuid(), nullable=False),
    sa.Column('google_id', sa.String(length=1024), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('all_day', sa.Boolean(), nullable=False),
    sa.Column('etag', sa.String(length=200), nullable=True),
    sa.Column('google_updated', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resource', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['calendar_id'], ['calendar.calendars.id'], name=op.f('fk_events_calendar_id_calendars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('calendar_id', 'google_id', name=op.f('uq_events_calendar_id_google_id')),
    schema='calendar'
    )
    op.create_index('ix_events_owner_start', 'events', ['org_id', 'user_id', 'start_at', 'id'], unique=False, schema='calendar')
    op.create_table('event_links',
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['calendar.events.id'], name=op.f('fk_event_links_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'record_type', 'record_id', name=op.f('pk_event_links')),
    schema='calendar'
    )
    op.create_index('ix_event_links_record', 'event_links', ['org_id', 'record_type', 'record_id'], unique=False, schema='calendar')


def downgrade() -> None:
    op.drop_index('ix_event_links_record', table_name='event_links', schema='calendar')
    op.drop_table('event_links', schema='calendar')
    op.drop_index('ix_events_owner_start', table_name='events', schema='calendar')
    op.drop_table('events', schema='calendar')
    op.drop_index('ix_work_requests_pending', table_name='work_requests', schema='calendar', postgresql_where=sa.text('pending'))
    op.drop_table('work_requests', schema='calendar')
    op.drop_index('ix_push_channels_owner', table_name='push_channels', schema='calendar')
    op.drop_index('ix_push_channels_active_expiry', table_name='push_channels', schema='calendar', postgresql_where=sa.text('stopped_at IS NULL'))
    op.drop_table('push_channels', schema='calendar')
    op.drop_index('ix_outbox_sent_at', table_name='outbox', schema='calendar', postgresql_where=sa.text('status = 1'))
    op.drop_index('ix_outbox_pending', table_name='outbox', schema='calendar', postgresql_where=sa.text('status = 0'))
    op.drop_table('outbox', schema='calendar')
    op.drop_table('job_schedule', schema='calendar')
    op.drop_table('inbox', schema='calendar')
    op.drop_index('ix_idempotency_keys_created_at', table_name='idempotency_keys', schema='calendar')
    op.drop_table('idempotency_keys', schema='calendar')
    op.drop_table('entity_versions', schema='calendar')
    op.drop_table('calendars', schema='calendar')
    op.drop_table('access_replica', schema='calendar')
