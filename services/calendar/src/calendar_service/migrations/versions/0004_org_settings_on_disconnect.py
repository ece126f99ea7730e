"""org settings: what a disconnected account's mirrored events become

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'org_settings',
        sa.Column(
            'on_disconnect',
            sa.String(length=20),
            server_default='keep_metadata',
            nullable=False,
        ),
        schema='calendar',
    )


def downgrade() -> None:
    op.drop_column('org_settings', 'on_disconnect', schema='calendar')
