"""audit log: still append-only, but an offboarded org's entries may be deleted with it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A DELETE passes only in a transaction that named the org it offboards
    # (SET LOCAL crm.offboarding_org), and then only that org's rows.
    op.execute("""
        CREATE OR REPLACE FUNCTION crm.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND coalesce(current_setting('crm.offboarding_org', true), '') <> '' THEN
                RETURN NULL;
            END IF;
            RAISE EXCEPTION 'crm.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    op.execute("""
        CREATE FUNCTION crm.refuse_audit_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.org_id = current_setting('crm.offboarding_org', true) THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'crm.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    op.execute("""
        CREATE TRIGGER audit_log_offboarded_only BEFORE DELETE ON crm.audit_log
        FOR EACH ROW EXECUTE FUNCTION crm.refuse_audit_delete()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_offboarded_only ON crm.audit_log")
    op.execute("DROP FUNCTION crm.refuse_audit_delete()")
    op.execute("""
        CREATE OR REPLACE FUNCTION crm.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'crm.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
