"""series: a copy may be a recurring meeting's whole series

``holders.recurrence`` keeps a series' rule (the projection's ``recurrence``), from which the
timeline answers the series' next occurrence.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
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
    op.add_column(
        'holders',
        sa.Column('recurrence', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema='timeline',
    )
    op.create_index(
        'ix_holders_series',
        'holders',
        ['org_id', 'item_id'],
        schema='timeline',
        postgresql_where=sa.text('recurrence IS NOT NULL AND held'),
    )


def downgrade() -> None:
    op.drop_index('ix_holders_series', table_name='holders', schema='timeline')
    op.drop_column('holders', 'recurrence', schema='timeline')
