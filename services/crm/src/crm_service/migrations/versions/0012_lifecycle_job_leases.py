"""lifecycle jobs: a lease naming the one runner of a job's parts; the periodic jobs' schedule

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('user_deactivations', 'data_deletions')


def upgrade() -> None:
    op.create_table('job_schedule',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_schedule')),
    schema='crm'
    )
    for table in TABLES:
        op.add_column(table, sa.Column('lease_holder', sa.String(length=64), nullable=True, comment='The runner calling the parts now (none: no one)'), schema='crm')
        op.add_column(table, sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True, comment='Until when the runner holds the job unless it renews (a dead one lets go then)'), schema='crm')


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, 'lease_expires_at', schema='crm')
        op.drop_column(table, 'lease_holder', schema='crm')
    op.drop_table('job_schedule', schema='crm')
