"""automation jobs keep no user token

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A job reads mail for its requester by id; no token of theirs is kept.
    op.drop_column('attachment_jobs', 'acting_token', schema='automation')


def downgrade() -> None:
    op.add_column(
        'attachment_jobs',
        sa.Column('acting_token', sa.Text(), nullable=True),
        schema='automation',
    )
