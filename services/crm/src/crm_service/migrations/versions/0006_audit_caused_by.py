"""audit entries caused by another (a Drive share following a CRM access change)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('audit_log', sa.Column('caused_by', sa.Uuid(), nullable=True), schema='crm')


def downgrade() -> None:
    op.drop_column('audit_log', 'caused_by', schema='crm')
