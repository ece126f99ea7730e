"""org settings: what a disconnected account's mirrored tasks become

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
    sa.Column('on_disconnect', sa.String(length=20), server_default='keep_metadata', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_org_settings')),
    schema='tasks'
    )


def downgrade() -> None:
    op.drop_table('org_settings', schema='tasks')
