"""timeline search index: trigrams of the copies' title and summary, where pg_trgm is available

The extension is created if the server offers it (PostgreSQL's pg_trgm is a trusted extension:
the database's owner may create it); where it is not offered, or may not be created, no index is
built and the search scans as before. ``alembic check`` leaves the index out where the extension
is missing (the model declares it with ``info={"requires_extension": "pg_trgm"}``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = 'ix_holders_text_trgm'


def upgrade() -> None:
    bind = op.get_bind()
    offered = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if offered:
        try:
            with bind.begin_nested():
                bind.execute(sa.text('CREATE EXTENSION IF NOT EXISTS pg_trgm'))
        except sa.exc.DBAPIError:
            pass  # not allowed here: the search scans
    installed = bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).scalar()
    if installed:
        op.create_index(
            INDEX, 'holders', ['title', 'summary'], unique=False, schema='timeline',
            postgresql_using='gin',
            postgresql_ops={'title': 'gin_trgm_ops', 'summary': 'gin_trgm_ops'},
        )


def downgrade() -> None:
    op.drop_index(INDEX, table_name='holders', schema='timeline', if_exists=True)
