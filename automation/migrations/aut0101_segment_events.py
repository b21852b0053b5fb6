"""automation: `segment.entered` and `segment.left` from insights' segment membership.

The insights job that segments the customer base writes one row per customer account in
`insights_account_value` and updates it in place when it runs again, so a row's `segment`
changes only when the account's membership does. Each such change writes, in the job's
transaction, `segment.left` (the segment it had) and `segment.entered` (the new one) for the
account; an account's first segment is an entry, a row removed (no longer a customer, or
deleted) a departure. The change's record is the account's row with `segment` set to the
segment entered or left (and `previous_segment` / `next_segment`), so a workflow asks for
one segment with the condition `segment eq NAME`.

Written only while an active workflow listens (`automation_watch` object `segment`); the
matcher then starts each run once (the change is deleted in the transaction that starts
its runs), like every other trigger.

Revision ID: aut0101
Revises: aut0004
"""

from __future__ import annotations

from alembic import op

revision = "aut0101"
down_revision = "aut0004"
branch_labels = None
depends_on = ("ins0100",)  # insights_account_value


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION automation_capture_segment() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            origin  bigint := nullif(current_setting('fieldmesh.automation_run', true), '')::bigint;
            account bigint;
            rec     jsonb;
        BEGIN
            IF TG_OP = 'UPDATE' AND OLD.segment = NEW.segment THEN
                RETURN NULL;
            END IF;
            IF NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'segment') THEN
                RETURN NULL;
            END IF;
            account := CASE WHEN TG_OP = 'DELETE' THEN OLD.account_id ELSE NEW.account_id END;
            SELECT to_jsonb(a) INTO rec FROM accounts a WHERE a.id = account;
            rec := coalesce(rec, jsonb_build_object('id', account));  -- the account is gone
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                INSERT INTO automation_changes (event, record_object, record_id, new, origin_run_id)
                VALUES ('segment.left', 'accounts', account::text,
                        rec || jsonb_build_object(
                            'segment', OLD.segment,
                            'next_segment', CASE WHEN TG_OP = 'UPDATE' THEN NEW.segment END),
                        origin);
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                INSERT INTO automation_changes (event, record_object, record_id, new, origin_run_id)
                VALUES ('segment.entered', 'accounts', account::text,
                        rec || jsonb_build_object(
                            'segment', NEW.segment,
                            'previous_segment', CASE WHEN TG_OP = 'UPDATE' THEN OLD.segment END,
                            'clv', NEW.clv, 'atypical', NEW.atypical),
                        origin);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER insights_account_value_automation
            AFTER INSERT OR UPDATE OF segment OR DELETE ON insights_account_value
            FOR EACH ROW EXECUTE FUNCTION automation_capture_segment();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS insights_account_value_automation ON insights_account_value;
        DROP FUNCTION IF EXISTS automation_capture_segment;
        """
    )
