"""drive users' connected Google accounts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 01:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('google_accounts',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('org_id', 'user_id', name=op.f('pk_google_accounts')),
    schema='drive'
    )


def downgrade() -> None:
    op.drop_table('google_accounts', schema='drive')
