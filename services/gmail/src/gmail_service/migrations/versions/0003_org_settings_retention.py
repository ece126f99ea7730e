"""org settings: how many days mirrored mail is kept

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
    op.add_column('org_settings', sa.Column('retention_days', sa.Integer(), nullable=True), schema='gmail')


def downgrade() -> None:
    op.drop_column('org_settings', 'retention_days', schema='gmail')
