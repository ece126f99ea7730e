"""tasks mirror, links, outbox

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 21:22:58.729312
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
    schema='tasks'
    )
    op.create_table('entity_versions',
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('entity', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'entity', 'key', name=op.f('pk_entity_versions')),
    schema='tasks'
    )
    op.create_table('idempotency_keys',
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_idempotency_keys')),
    schema='tasks'
    )
    op.create_index('ix_idempotency_keys_created_at', 'idempotency_keys', ['created_at'], unique=False, schema='tasks')
    op.create_table('inbox',
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id', name=op.f('pk_inbox')),
    schema='tasks'
    )
    op.create_table('job_schedule',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_schedule')),
    schema='tasks'
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
    schema='tasks'
    )
    op.create_index('ix_outbox_pending', 'outbox', ['id'], unique=False, schema='tasks', postgresql_where=sa.text('status = 0'))
    op.create_index('ix_outbox_sent_at', 'outbox', ['sent_at'], unique=False, schema='tasks', postgresql_where=sa.text('status = 1'))
    op.create_table('tasklists',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('user_email', sa.String(length=320), nullable=True),
    sa.Column('google_id', sa.String(length=200), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('etag', sa.String(length=200), nullable=True),
    sa.Column('polled_through', sa.DateTime(timezone=True), nullable=True),
    sa.Column('polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasklists')),
    sa.UniqueConstraint('org_id', 'user_id', 'google_id', name=op.f('uq_tasklists_org_id_user_id_google_id')),
    schema='tasks'
    )
    op.create_table('work_requests',
    sa.Column('key', sa.String(length=500), nullable=False),
    sa.Column('pending', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_work_requests')),
    schema='tasks'
    )
    op.create_index('ix_work_requests_pending', 'work_requests', ['key'], unique=False, schema='tasks', postgresql_where=sa.text('pending'))
    op.create_table('tasks',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('tasklist_id', sa.Uuid(), nullable=False),
    sa.Column('google_id', sa.String(length=200), nullable=True),
    sa.Column('parent_google_id', sa.String(length=200), nullable=True),
    sa.Column('position', sa.String(length=64), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('due', sa.Date(), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('etag', sa.String(length=200), nullable=True),
    sa.Column('google_updated', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resource', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('assigned_by', sa.String(length=255), nullable=True),
    sa.Column('creating_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tasklist_id'], ['tasks.tasklists.id'], name=op.f('fk_tasks_tasklist_id_tasklists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('tasklist_id', 'google_id', name=op.f('uq_tasks_tasklist_id_google_id')),
    schema='tasks'
    )
    op.create_index('ix_tasks_assigned_by', 'tasks', ['org_id', 'assigned_by', 'created_at', 'id'], unique=False, schema='tasks')
    op.create_index('ix_tasks_owner', 'tasks', ['org_id', 'user_id', 'created_at', 'id'], unique=False, schema='tasks')
    op.create_index('ix_tasks_pending', 'tasks', ['tasklist_id', 'created_at'], unique=False, schema='tasks', postgresql_where=sa.text('google_id IS NULL'))
    op.create_table('task_links',
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.tasks.id'], name=op.f('fk_task_links_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id', 'record_type', 'record_id', name=op.f('pk_task_links')),
    schema='tasks'
    )
    op.create_index('ix_task_links_record', 'task_links', ['org_id', 'record_type', 'record_id'], unique=False, schema='tasks')


def downgrade() -> None:
    op.drop_index('ix_task_links_record', table_name='task_links', schema='tasks')
    op.drop_table('task_links', schema='tasks')
    op.drop_index('ix_tasks_pending', table_name='tasks', schema='tasks', postgresql_where=sa.text('google_id IS NULL'))
    op.drop_index('ix_tasks_owner', table_name='tasks', schema='tasks')
    op.drop_index('ix_tasks_assigned_by', table_name='tasks', schema='tasks')
    op.drop_table('tasks', schema='tasks')
    op.drop_index('ix_work_requests_pending', table_name='work_requests', schema='tasks', postgresql_where=sa.text('pending'))
    op.drop_table('work_requests', schema='tasks')
    op.drop_table('tasklists', schema='tasks')
    op.drop_index('ix_outbox_sent_at', table_name='outbox', schema='tasks', postgresql_where=sa.text('status = 1'))
    op.drop_index('ix_outbox_pending', table_name='outbox', schema='tasks', postgresql_where=sa.text('status = 0'))
    op.drop_table('outbox', schema='tasks')
    op.drop_table('job_schedule', schema='tasks')
    op.drop_table('inbox', schema='tasks')
    op.drop_index('ix_idempotency_keys_created_at', table_name='idempotency_keys', schema='tasks')
    op.drop_table('idempotency_keys', schema='tasks')
    op.drop_table('entity_versions', schema='tasks')
    op.drop_table('access_replica', schema='tasks')
