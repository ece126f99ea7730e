"""automation SLA: a response that came after its due time leaves the breach it missed on its clock

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'sla_clocks',
        sa.Column('overdue_stage', sa.String(length=20), nullable=True),
        schema='automation',
    )
    op.add_column(
        'sla_clocks',
        sa.Column('overdue_due_at', sa.DateTime(timezone=True), nullable=True),
        schema='automation',
    )


def downgrade() -> None:
    op.drop_column('sla_clocks', 'overdue_due_at', schema='automation')
    op.drop_column('sla_clocks', 'overdue_stage', schema='automation')
