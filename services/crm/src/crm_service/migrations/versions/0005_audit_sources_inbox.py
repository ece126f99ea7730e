"""audit entries of other services (source, file), inbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('audit_log', sa.Column('source', sa.String(length=20), server_default='crm', nullable=False), schema='crm')
    op.add_column('audit_log', sa.Column('file_id', sa.String(length=200), nullable=True), schema='crm')
    op.add_column('audit_log', sa.Column('file_name', sa.Text(), nullable=True), schema='crm')
    op.create_table('entity_versions',
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('entity', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'entity', 'key', name=op.f('pk_entity_versions')),
    schema='crm'
    )
    op.create_table('inbox',
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id', name=op.f('pk_inbox')),
    schema='crm'
    )


def downgrade() -> None:
    op.drop_table('inbox', schema='crm')
    op.drop_table('entity_versions', schema='crm')
    # The audit log is append-only: its trigger refuses UPDATE, not a column's removal.
    op.drop_column('audit_log', 'file_name', schema='crm')
    op.drop_column('audit_log', 'file_id', schema='crm')
    op.drop_column('audit_log', 'source', schema='crm')
