"""automation: `meeting.booked` and `lead.converted` from the CRM's own tables.

- a meeting activity created for a contact or a lead (the calendar's bookings and booking
  links create one, as does a rep): `meeting.booked` for that contact (and that lead);
- a lead whose status becomes `converted` (crm.records.convert_lead): `lead.converted`.

Written only while an active workflow listens (`automation_watch` objects `meeting`,
`lead`), so a sequence can exit on a booked meeting or a conversion.

Revision ID: aut0004
Revises: aut0003
"""

from __future__ import annotations

from alembic import op

revision = "aut0004"
down_revision = "aut0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION automation_capture_meeting() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            data   jsonb;
            origin bigint := nullif(current_setting('fieldmesh.automation_run', true), '')::bigint;
        BEGIN
            IF NEW.type <> 'meeting' OR (NEW.contact_id IS NULL AND NEW.lead_id IS NULL)
               OR NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'meeting') THEN
                RETURN NULL;
            END IF;
            data := jsonb_build_object('activity_id', NEW.id, 'subject', NEW.subject,
                                       'start_at', NEW.start_at, 'owner_id', NEW.owner_id);
            IF NEW.contact_id IS NOT NULL THEN
                INSERT INTO automation_changes (event, record_object, record_id, new, origin_run_id)
                VALUES ('meeting.booked', 'contacts', NEW.contact_id::text, data, origin);
            END IF;
            IF NEW.lead_id IS NOT NULL THEN
                INSERT INTO automation_changes (event, record_object, record_id, new, origin_run_id)
                VALUES ('meeting.booked', 'leads', NEW.lead_id::text, data, origin);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER activities_automation_meeting AFTER INSERT ON activities
            FOR EACH ROW EXECUTE FUNCTION automation_capture_meeting();

        CREATE FUNCTION automation_capture_conversion() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            origin bigint := nullif(current_setting('fieldmesh.automation_run', true), '')::bigint;
        BEGIN
            IF NEW.status <> 'converted' OR OLD.status = 'converted'
               OR NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'lead') THEN
                RETURN NULL;
            END IF;
            INSERT INTO automation_changes (event, record_object, record_id, new, origin_run_id)
            VALUES ('lead.converted', 'leads', NEW.id::text, to_jsonb(NEW), origin);
            RETURN NULL;
        END $$;
        CREATE TRIGGER leads_automation_conversion AFTER UPDATE OF status ON leads
            FOR EACH ROW EXECUTE FUNCTION automation_capture_conversion();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS activities_automation_meeting ON activities;
        DROP TRIGGER IF EXISTS leads_automation_conversion ON leads;
        DROP FUNCTION IF EXISTS automation_capture_meeting, automation_capture_conversion;
        """
    )
