"""drive files say what they were saved from

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'files',
        sa.Column('origin', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema='drive',
    )
    op.create_index(
        'ix_files_folder_md5', 'files', ['folder_id', 'md5'], unique=False, schema='drive'
    )


def downgrade() -> None:
    op.drop_index('ix_files_folder_md5', table_name='files', schema='drive')
    op.drop_column('files', 'origin', schema='drive')
