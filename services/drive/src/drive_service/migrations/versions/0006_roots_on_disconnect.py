"""drive roots: what the file index becomes once the root's account disconnects

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
    op.add_column(
        'roots',
        sa.Column(
            'on_disconnect',
            sa.String(length=20),
            server_default='keep_metadata',
            nullable=False,
        ),
        schema='drive',
    )


def downgrade() -> None:
    op.drop_column('roots', 'on_disconnect', schema='drive')
