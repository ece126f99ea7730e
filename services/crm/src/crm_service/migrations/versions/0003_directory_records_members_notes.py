"""directory, records, members, notes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('companies',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_companies')),
    schema='crm'
    )
    op.create_index('ix_companies_org_created', 'companies', ['org_id', 'created_at', 'id'], unique=False, schema='crm')
    op.create_index('ix_companies_org_updated', 'companies', ['org_id', 'updated_at', 'id'], unique=False, schema='crm')
    op.create_table('notes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('record_type', sa.String(length=10), nullable=False),
    sa.Column('record_id', sa.Uuid(), nullable=False),
    sa.Column('author_id', sa.String(length=255), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("record_type IN ('lead', 'deal', 'contact', 'company')", name=op.f('ck_notes_record_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notes')),
    schema='crm'
    )
    op.create_index('ix_notes_record', 'notes', ['org_id', 'record_type', 'record_id', 'created_at', 'id'], unique=False, schema='crm')
    op.create_table('record_members',
    sa.Column('record_type', sa.String(length=10), nullable=False),
    sa.Column('record_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=15), nullable=False),
    sa.Column('added_by', sa.String(length=255), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("record_type IN ('lead', 'deal')", name=op.f('ck_record_members_record_type')),
    sa.CheckConstraint("role IN ('collaborator', 'follower')", name=op.f('ck_record_members_role')),
    sa.PrimaryKeyConstraint('record_type', 'record_id', 'user_id', name=op.f('pk_record_members')),
    schema='crm'
    )
    op.create_index('ix_record_members_user', 'record_members', ['org_id', 'user_id', 'record_type'], unique=False, schema='crm')
    op.create_table('teams',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'id', name=op.f('pk_teams')),
    schema='crm'
    )
    op.create_table('users',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('name', sa.String(length=300), nullable=True),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('team_ids', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('provisioned_by', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'manager', 'rep', 'viewer')", name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('org_id', 'id', name=op.f('pk_users')),
    schema='crm'
    )
    op.create_table('contacts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('emails', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('phones', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('company_id', sa.Uuid(), nullable=True),
    sa.Column('job_title', sa.String(length=300), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['crm.companies.id'], name=op.f('fk_contacts_company_id_companies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    schema='crm'
    )
    op.create_index('ix_contacts_emails', 'contacts', ['emails'], unique=False, schema='crm', postgresql_using='gin')
    op.create_index('ix_contacts_org_created', 'contacts', ['org_id', 'created_at', 'id'], unique=False, schema='crm')
    op.create_index('ix_contacts_org_updated', 'contacts', ['org_id', 'updated_at', 'id'], unique=False, schema='crm')
    op.create_table('deals',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('company_id', sa.Uuid(), nullable=True),
    sa.Column('contact_ids', sa.ARRAY(sa.Uuid()), nullable=False),
    sa.Column('lead_id', sa.Uuid(), nullable=True),
    sa.Column('owner_id', sa.String(length=255), nullable=False),
    sa.Column('team_id', sa.String(length=255), nullable=True),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('amount', sa.Numeric(precision=16, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('expected_close_date', sa.Date(), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("stage IN ('qualification', 'proposal', 'negotiation', 'won', 'lost')", name=op.f('ck_deals_stage')),
    sa.CheckConstraint('amount IS NULL OR amount >= 0', name=op.f('ck_deals_amount')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_deals_version')),
    sa.ForeignKeyConstraint(['company_id'], ['crm.companies.id'], name=op.f('fk_deals_company_id_companies')),
    sa.ForeignKeyConstraint(['lead_id'], ['crm.leads.id'], name=op.f('fk_deals_lead_id_leads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deals')),
    schema='crm'
    )
    op.create_index('ix_deals_lead', 'deals', ['lead_id'], unique=True, schema='crm')
    op.create_index('ix_deals_org_created', 'deals', ['org_id', 'created_at', 'id'], unique=False, schema='crm')
    op.create_index('ix_deals_org_owner', 'deals', ['org_id', 'owner_id'], unique=False, schema='crm')
    op.create_index('ix_deals_org_team', 'deals', ['org_id', 'team_id'], unique=False, schema='crm')
    op.create_index('ix_deals_org_updated', 'deals', ['org_id', 'updated_at', 'id'], unique=False, schema='crm')
    op.alter_column('audit_log', 'record_id',
               existing_type=sa.UUID(),
               type_=sa.String(length=255),
               existing_nullable=False,
               postgresql_using='record_id::text',
               schema='crm')
    op.add_column('audit_log', sa.Column('reason', sa.Text(), nullable=True), schema='crm')
    op.drop_index(op.f('ix_audit_log_org_time'), table_name='audit_log', schema='crm')
    op.create_index('ix_audit_log_org_time', 'audit_log', ['org_id', 'occurred_at', 'id'], unique=False, schema='crm')
    op.create_index('ix_audit_log_actor', 'audit_log', ['org_id', 'actor_id', 'occurred_at'], unique=False, schema='crm')
    op.add_column('leads', sa.Column('company_id', sa.Uuid(), nullable=True), schema='crm')
    op.add_column('leads', sa.Column('contact_ids', sa.ARRAY(sa.Uuid()), nullable=False, server_default=sa.text("'{}'")), schema='crm')
    op.alter_column('leads', 'contact_ids', server_default=None, schema='crm')
    op.create_foreign_key(op.f('fk_leads_company_id_companies'), 'leads', 'companies', ['company_id'], ['id'], source_schema='crm', referent_schema='crm')


def downgrade() -> None:
    op.drop_constraint(op.f('fk_leads_company_id_companies'), 'leads', schema='crm', type_='foreignkey')
    op.drop_column('leads', 'contact_ids', schema='crm')
    op.drop_column('leads', 'company_id', schema='crm')
    op.drop_index('ix_audit_log_actor', table_name='audit_log', schema='crm')
    op.drop_column('audit_log', 'reason', schema='crm')
    op.drop_index('ix_audit_log_org_time', table_name='audit_log', schema='crm')
    op.create_index(op.f('ix_audit_log_org_time'), 'audit_log', ['org_id', 'occurred_at'], unique=False, schema='crm')
    op.alter_column('audit_log', 'record_id',
               existing_type=sa.String(length=255),
               type_=sa.UUID(),
               existing_nullable=False,
               postgresql_using='record_id::uuid',
               schema='crm')
    op.drop_index('ix_deals_org_updated', table_name='deals', schema='crm')
    op.drop_index('ix_deals_org_team', table_name='deals', schema='crm')
    op.drop_index('ix_deals_org_owner', table_name='deals', schema='crm')
    op.drop_index('ix_deals_org_created', table_name='deals', schema='crm')
    op.drop_index('ix_deals_lead', table_name='deals', schema='crm')
    op.drop_table('deals', schema='crm')
    op.drop_index('ix_contacts_org_updated', table_name='contacts', schema='crm')
    op.drop_index('ix_contacts_org_created', table_name='contacts', schema='crm')
    op.drop_index('ix_contacts_emails', table_name='contacts', schema='crm', postgresql_using='gin')
    op.drop_table('contacts', schema='crm')
    op.drop_table('users', schema='crm')
    op.drop_table('teams', schema='crm')
    op.drop_index('ix_record_members_user', table_name='record_members', schema='crm')
    op.drop_table('record_members', schema='crm')
    op.drop_index('ix_notes_record', table_name='notes', schema='crm')
    op.drop_table('notes', schema='crm')
    op.drop_index('ix_companies_org_updated', table_name='companies', schema='crm')
    op.drop_index('ix_companies_org_created', table_name='companies', schema='crm')
    op.drop_table('companies', schema='crm')
