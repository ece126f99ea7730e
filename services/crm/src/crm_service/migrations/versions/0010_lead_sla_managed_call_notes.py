"""leads: sla_managed (the automation service sets sla_due_at while a policy applies); notes: kind

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('leads', sa.Column('sla_managed', sa.Boolean(), server_default=sa.text('false'), nullable=False), schema='crm')
    op.add_column('notes', sa.Column('kind', sa.String(length=10), server_default=sa.text("'note'"), nullable=False), schema='crm')
    op.create_check_constraint(op.f('ck_notes_kind'), 'notes', "kind IN ('note', 'call')", schema='crm')


def downgrade() -> None:
    op.drop_constraint(op.f('ck_notes_kind'), 'notes', schema='crm', type_='check')
    op.drop_column('notes', 'kind', schema='crm')
    op.drop_column('leads', 'sla_managed', schema='crm')
