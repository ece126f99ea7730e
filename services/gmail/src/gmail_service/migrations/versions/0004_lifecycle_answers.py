"""lifecycle answers: each lifecycle step's answer, remembered per job of the CRM

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lifecycle_answers',
    sa.Column('step', sa.String(length=40), nullable=False),
    sa.Column('job_id', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('ended', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('step', 'job_id', name=op.f('pk_lifecycle_answers')),
    schema='gmail'
    )


def downgrade() -> None:
    op.drop_table('lifecycle_answers', schema='gmail')
