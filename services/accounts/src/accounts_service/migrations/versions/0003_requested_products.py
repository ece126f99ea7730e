"""the products each connection was asked for

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'google_connections',
        sa.Column('requested_products', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
        schema='accounts',
    )


def downgrade() -> None:
    op.drop_column('google_connections', 'requested_products', schema='accounts')
