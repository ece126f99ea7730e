"""item holders: one item per message or meeting, one holder row per copy

Every item becomes an item with one holder: its content, visibility hints, version and time of
change move to ``holders`` (with its explicit links, which the links table keeps too), and the
item keeps its id, its time and its links. Items get an ``identity`` (none for the items moved
here).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The item columns that are a copy's since this revision (the item keeps id, org_id and
# occurred_at).
COPY_COLUMNS = (
    'kind', 'title', 'summary', 'participants', 'status', 'actor_id', 'source_service',
    'google_id', 'url', 'owner_id', 'private', 'sharing', 'version', 'event_id', 'updated_at',
)


def upgrade() -> None:
    op.create_table('holders',
    sa.Column('org_id', sa.String(length=255), nullable=False),
    sa.Column('source_key', sa.String(length=300), nullable=False),
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('owner_id', sa.String(length=255), nullable=True),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('sharing', sa.String(length=20), nullable=True),
    sa.Column('held', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('participants', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=50), nullable=True),
    sa.Column('actor_id', sa.String(length=255), nullable=True),
    sa.Column('source_service', sa.String(length=50), nullable=False),
    sa.Column('google_id', sa.String(length=1024), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('links', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['timeline.items.id'], name=op.f('fk_holders_item_id_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('org_id', 'source_key', name=op.f('pk_holders')),
    schema='timeline'
    )
    # Each item becomes its one holder; its explicit links are the ones its projection named.
    op.execute(
        """
        INSERT INTO timeline.holders (
            org_id, source_key, item_id, owner_id, private, sharing, held, version, event_id,
            changed_at, kind, occurred_at, title, summary, participants, status, actor_id,
            source_service, google_id, url, links, updated_at)
        SELECT i.org_id, i.source_key, i.id, i.owner_id, i.private, i.sharing,
               coalesce(i.status NOT IN ('cancelled', 'deleted'), true), i.version, i.event_id,
               i.updated_at, i.kind, i.occurred_at, i.title, i.summary, i.participants,
               i.status, i.actor_id, i.source_service, i.google_id, i.url,
               coalesce((SELECT jsonb_agg(jsonb_build_array(l.record_type, l.record_id)
                                          ORDER BY l.record_type, l.record_id)
                         FROM timeline.links l WHERE l.item_id = i.id AND l.explicit),
                        '[]'::jsonb),
               i.updated_at
        FROM timeline.items i
        """
    )
    op.create_index('ix_holders_item', 'holders', ['item_id'], unique=False, schema='timeline')
    op.create_index('ix_holders_participants', 'holders', ['participants'], unique=False, schema='timeline', postgresql_using='gin')
    op.add_column('items', sa.Column('identity', sa.String(length=300), nullable=True), schema='timeline')
    op.drop_index(op.f('ix_items_participants'), table_name='items', schema='timeline', postgresql_using='gin')
    op.drop_constraint(op.f('uq_items_org_id_source_key'), 'items', schema='timeline', type_='unique')
    op.create_unique_constraint(op.f('uq_items_org_id_identity'), 'items', ['org_id', 'identity'], schema='timeline')
    op.drop_column('items', 'source_key', schema='timeline')
    op.drop_column('items', 'visibility', schema='timeline')
    for column in COPY_COLUMNS:
        op.drop_column('items', column, schema='timeline')


def downgrade() -> None:
    """Back to one row per item, holding the copy a viewer with full access is shown (the newest
    live one): an item's other copies are lost, as that schema cannot hold them (nor a Google id
    longer than 300 characters: such a copy stops the downgrade)."""
    op.add_column('items', sa.Column('source_key', sa.VARCHAR(length=300), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('kind', sa.VARCHAR(length=20), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('title', sa.VARCHAR(length=500), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('summary', sa.TEXT(), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('participants', postgresql.ARRAY(sa.TEXT()), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('status', sa.VARCHAR(length=50), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('actor_id', sa.VARCHAR(length=255), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('source_service', sa.VARCHAR(length=50), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('google_id', sa.VARCHAR(length=300), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('url', sa.TEXT(), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('visibility', postgresql.JSONB(astext_type=sa.Text()), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('owner_id', sa.VARCHAR(length=255), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('private', sa.BOOLEAN(), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('sharing', sa.VARCHAR(length=20), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('version', sa.INTEGER(), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('event_id', sa.UUID(), autoincrement=False, nullable=True), schema='timeline')
    op.add_column('items', sa.Column('updated_at', postgresql.TIMESTAMP(timezone=True), autoincrement=False, nullable=True), schema='timeline')
    op.execute(
        """
        UPDATE timeline.items i
        SET source_key = h.source_key, kind = h.kind, title = h.title, summary = h.summary,
            participants = h.participants, status = h.status, actor_id = h.actor_id,
            source_service = h.source_service, google_id = h.google_id, url = h.url,
            visibility = jsonb_build_object(
                'private', h.private, 'sharing', h.sharing, 'owner_id', h.owner_id),
            owner_id = h.owner_id, private = h.private, sharing = h.sharing,
            version = h.version, event_id = h.event_id, updated_at = h.updated_at
        FROM (SELECT DISTINCT ON (item_id) *
              FROM timeline.holders
              ORDER BY item_id, held DESC, changed_at DESC, source_key) h
        WHERE h.item_id = i.id
        """
    )
    for column in ('source_key', 'kind', 'title', 'participants', 'source_service', 'visibility',
                   'private', 'version', 'event_id', 'updated_at'):
        op.alter_column('items', column, nullable=False, schema='timeline')
    op.drop_constraint(op.f('uq_items_org_id_identity'), 'items', schema='timeline', type_='unique')
    op.create_unique_constraint(op.f('uq_items_org_id_source_key'), 'items', ['org_id', 'source_key'], schema='timeline')
    op.create_index(op.f('ix_items_participants'), 'items', ['participants'], unique=False, schema='timeline', postgresql_using='gin')
    op.drop_column('items', 'identity', schema='timeline')
    op.drop_index('ix_holders_participants', table_name='holders', schema='timeline', postgresql_using='gin')
    op.drop_index('ix_holders_item', table_name='holders', schema='timeline')
    op.drop_table('holders', schema='timeline')
