"""automation SLA: policies, business calendars, lead clocks, alerts, the replicas they need, feature flags, the job schedule

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 10:29:38.365870
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('business_calendars',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('team_id', sa.String(length=255), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('week', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('holidays', postgresql.ARRAY(sa.Date()), nullable=False),
    sa.Column('updated_by', sa.String(length=255), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'team_id', name=op.f('pk_business_calendars')),
    schema='automation'
    )
    op.create_table('feature_flags',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('scope', sa.String(length=10), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('team_id', sa.String(length=255), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.String(length=255), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(scope = 'global' AND org_id = '' AND team_id = '') OR (scope = 'org' AND org_id <> '' AND team_id = '') OR (scope = 'team' AND org_id <> '' AND team_id <> '')", name=op.f('ck_feature_flags_scope_keys')),
    sa.CheckConstraint("scope IN ('global', 'org', 'team')", name=op.f('ck_feature_flags_scope')),
    sa.PrimaryKeyConstraint('key', 'scope', 'org_id', 'team_id', name=op.f('pk_feature_flags')),
    schema='automation'
    )
    op.create_table('job_schedule',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_schedule')),
    schema='automation'
    )
    op.create_table('sla_alerts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('lead_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('owner_id', sa.String(length=255), nullable=False),
    sa.Column('team_id', sa.String(length=255), nullable=True),
    sa.Column('recipient_ids', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('warning', 'breached')", name=op.f('ck_sla_alerts_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_alerts')),
    sa.UniqueConstraint('lead_id', 'kind', 'due_at', name='one_per_due_time'),
    schema='automation'
    )
    op.create_index(op.f('ix_sla_alerts_org_id'), 'sla_alerts', ['org_id'], unique=False, schema='automation')
    op.create_table('sla_clocks',
    sa.Column('lead_id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('owner_id', sa.String(length=255), nullable=False),
    sa.Column('team_id', sa.String(length=255), nullable=True),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('contact_ids', postgresql.ARRAY(sa.Uuid()), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('lead_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_touch_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('managed', sa.Boolean(), nullable=False),
    sa.Column('crm_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('crm_managed', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('lead_id', name=op.f('pk_sla_clocks')),
    schema='automation'
    )
    op.create_index('ix_sla_clocks_contacts', 'sla_clocks', ['contact_ids'], unique=False, schema='automation', postgresql_using='gin')
    op.create_index('ix_sla_clocks_due', 'sla_clocks', ['due_at'], unique=False, schema='automation')
    op.create_index('ix_sla_clocks_org_owner', 'sla_clocks', ['org_id', 'owner_id'], unique=False, schema='automation')
    op.create_index('ix_sla_clocks_org_team', 'sla_clocks', ['org_id', 'team_id'], unique=False, schema='automation')
    op.create_table('sla_contacts',
    sa.Column('contact_id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('emails', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_sla_contacts')),
    schema='automation'
    )
    op.create_index('ix_sla_contacts_emails', 'sla_contacts', ['emails'], unique=False, schema='automation', postgresql_using='gin')
    op.create_index(op.f('ix_sla_contacts_org_id'), 'sla_contacts', ['org_id'], unique=False, schema='automation')
    op.create_table('sla_notifications',
    sa.Column('notification_id', sa.Uuid(), nullable=False),
    sa.Column('alert_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('notification_id', name=op.f('pk_sla_notifications')),
    schema='automation'
    )
    op.create_index(op.f('ix_sla_notifications_alert_id'), 'sla_notifications', ['alert_id'], unique=False, schema='automation')
    op.create_table('sla_policies',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('first_response_minutes', sa.Integer(), nullable=False),
    sa.Column('next_touch_minutes', sa.Integer(), nullable=False),
    sa.Column('warning_minutes', sa.Integer(), nullable=False),
    sa.Column('escalate_to_admins', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.String(length=255), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name=op.f('ck_sla_policies_priority')),
    sa.CheckConstraint('first_response_minutes > 0', name=op.f('ck_sla_policies_first_response_minutes')),
    sa.CheckConstraint('next_touch_minutes > 0', name=op.f('ck_sla_policies_next_touch_minutes')),
    sa.CheckConstraint('warning_minutes >= 0', name=op.f('ck_sla_policies_warning_minutes')),
    sa.PrimaryKeyConstraint('org_id', 'priority', name=op.f('pk_sla_policies')),
    schema='automation'
    )
    op.create_table('sla_users',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('team_ids', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'user_id', name=op.f('pk_sla_users')),
    schema='automation'
    )


def downgrade() -> None:
    op.drop_table('sla_users', schema='automation')
    op.drop_table('sla_policies', schema='automation')
    op.drop_index(op.f('ix_sla_notifications_alert_id'), table_name='sla_notifications', schema='automation')
    op.drop_table('sla_notifications', schema='automation')
    op.drop_index(op.f('ix_sla_contacts_org_id'), table_name='sla_contacts', schema='automation')
    op.drop_index('ix_sla_contacts_emails', table_name='sla_contacts', schema='automation', postgresql_using='gin')
    op.drop_table('sla_contacts', schema='automation')
    op.drop_index('ix_sla_clocks_org_team', table_name='sla_clocks', schema='automation')
    op.drop_index('ix_sla_clocks_org_owner', table_name='sla_clocks', schema='automation')
    op.drop_index('ix_sla_clocks_due', table_name='sla_clocks', schema='automation')
    op.drop_index('ix_sla_clocks_contacts', table_name='sla_clocks', schema='automation', postgresql_using='gin')
    op.drop_table('sla_clocks', schema='automation')
    op.drop_index(op.f('ix_sla_alerts_org_id'), table_name='sla_alerts', schema='automation')
    op.drop_table('sla_alerts', schema='automation')
    op.drop_table('job_schedule', schema='automation')
    op.drop_table('feature_flags', schema='automation')
    op.drop_table('business_calendars', schema='automation')
