"""gmail sent messages, the org's automation sender

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 07:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sent_messages',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('sender_email', sa.String(length=320), nullable=False),
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('rfc822_message_id', sa.String(length=300), nullable=False),
    sa.Column('google_id', sa.String(length=64), nullable=True),
    sa.Column('thread_id', sa.String(length=64), nullable=True),
    sa.Column('message_id', sa.Uuid(), nullable=True),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sent_messages')),
    sa.UniqueConstraint('org_id', 'scope', 'key', name=op.f('uq_sent_messages_org_id_scope_key')),
    schema='gmail'
    )
    op.add_column('org_settings', sa.Column('automation_sender_id', sa.String(length=255), nullable=True), schema='gmail')


def downgrade() -> None:
    op.drop_column('org_settings', 'automation_sender_id', schema='gmail')
    op.drop_table('sent_messages', schema='gmail')
