"""org settings: how many days mirrored events are kept

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('org_settings',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_org_settings')),
    schema='calendar'
    )


def downgrade() -> None:
    op.drop_table('org_settings', schema='calendar')
