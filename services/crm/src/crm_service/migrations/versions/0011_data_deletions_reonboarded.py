"""data deletions: when an offboarded org was onboarded again

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('data_deletions', sa.Column('reonboarded_at', sa.DateTime(timezone=True), nullable=True, comment='An offboarding: when an operator onboarded the org again (its users are refused until then)'), schema='crm')


def downgrade() -> None:
    op.drop_column('data_deletions', 'reonboarded_at', schema='crm')
