"""drive record folders: the CRM change their next sharing sync follows

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('record_folders', sa.Column('sharing_cause', postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema='drive')


def downgrade() -> None:
    op.drop_column('record_folders', 'sharing_cause', schema='drive')
