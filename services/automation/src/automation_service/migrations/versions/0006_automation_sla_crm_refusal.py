"""automation SLA: a due time CRM refused is recorded on its clock, with the reason

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'sla_clocks',
        sa.Column('crm_refusal', sa.String(length=500), nullable=True),
        schema='automation',
    )
    op.add_column(
        'sla_clocks',
        sa.Column('crm_refused_at', sa.DateTime(timezone=True), nullable=True),
        schema='automation',
    )


def downgrade() -> None:
    op.drop_column('sla_clocks', 'crm_refused_at', schema='automation')
    op.drop_column('sla_clocks', 'crm_refusal', schema='automation')
