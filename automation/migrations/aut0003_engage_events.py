"""automation: engage's events for the matcher (exit on reply, opens, unsubscribes).

engage sits below automation and does not call it; its tables tell what happened, so row
triggers here write the outside events into `automation_changes` in engage's own
transaction, only while an active workflow listens to e-mail, SMS or chat events
(`automation_watch` object `engage`):

- an inbound message (`engage_messages`, direction in): `email.replied` (it answers a
  message: In-Reply-To or References) or `email.received`; `sms.replied` (the person got
  an SMS from us in that conversation before) or `sms.received`; `chat.submitted`;
- an e-mail opened (`engage_outbox.opened_at` set): `email.opened`;
- an address marked bounced (`engage_address_status`): `email.bounced` for its contacts;
- consent withdrawn (`engage_consent.granted` false): `email.unsubscribed` /
  `sms.unsubscribed`.

The record is the contact (or, without one, the conversation's lead).

Revision ID: aut0003
Revises: aut0002
"""

from __future__ import annotations

from alembic import op

revision = "aut0003"
down_revision = "aut0002"
branch_labels = None
depends_on = ("eng0001",)


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION automation_capture_engage_message() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            obj text;
            rid text;
            ev  text;
        BEGIN
            IF NEW.direction <> 'in' OR NEW.kind <> 'message' THEN
                RETURN NULL;
            END IF;
            IF NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'engage') THEN
                RETURN NULL;
            END IF;
            IF NEW.contact_id IS NOT NULL THEN
                obj := 'contacts';
                rid := NEW.contact_id::text;
            ELSE
                SELECT 'leads', c.lead_id::text INTO obj, rid FROM engage_conversations c
                WHERE c.id = NEW.conversation_id AND c.lead_id IS NOT NULL;
            END IF;
            IF NEW.channel = 'email' THEN
                ev := CASE WHEN NEW.in_reply_to IS NOT NULL OR cardinality(NEW.refs) > 0
                           THEN 'email.replied' ELSE 'email.received' END;
            ELSIF NEW.channel = 'sms' THEN
                ev := CASE WHEN EXISTS (SELECT 1 FROM engage_messages m
                                        WHERE m.conversation_id = NEW.conversation_id
                                          AND m.channel = 'sms' AND m.direction = 'out'
                                          AND m.id < NEW.id)
                           THEN 'sms.replied' ELSE 'sms.received' END;
            ELSIF NEW.channel = 'chat' THEN
                ev := 'chat.submitted';
            ELSE
                RETURN NULL;
            END IF;
            INSERT INTO automation_changes (event, record_object, record_id, new)
            VALUES (ev, obj, rid, jsonb_build_object(
                'message_id', NEW.id, 'conversation_id', NEW.conversation_id, 'channel', NEW.channel,
                'from', NEW.from_addr, 'subject', NEW.subject, 'in_reply_to', NEW.in_reply_to,
                'contact_id', NEW.contact_id));
            RETURN NULL;
        END $$;
        CREATE TRIGGER engage_messages_automation AFTER INSERT ON engage_messages
            FOR EACH ROW EXECUTE FUNCTION automation_capture_engage_message();

        CREATE FUNCTION automation_capture_engage_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.contact_id IS NULL
               OR NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'engage') THEN
                RETURN NULL;
            END IF;
            IF OLD.opened_at IS NULL AND NEW.opened_at IS NOT NULL THEN
                INSERT INTO automation_changes (event, record_object, record_id, new)
                VALUES ('email.opened', 'contacts', NEW.contact_id::text, jsonb_build_object(
                    'outbox_id', NEW.id, 'idempotency_key', NEW.idempotency_key,
                    'subject', NEW.subject));
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER engage_outbox_automation AFTER UPDATE OF opened_at ON engage_outbox
            FOR EACH ROW EXECUTE FUNCTION automation_capture_engage_outbox();

        CREATE FUNCTION automation_capture_engage_consent() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.granted OR NEW.channel NOT IN ('email', 'sms')
               OR (TG_OP = 'UPDATE' AND NOT OLD.granted)
               OR NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'engage') THEN
                RETURN NULL;
            END IF;
            INSERT INTO automation_changes (event, record_object, record_id, new)
            VALUES (NEW.channel || '.unsubscribed', 'contacts', NEW.contact_id::text,
                    jsonb_build_object('purpose', NEW.purpose, 'source', NEW.source));
            RETURN NULL;
        END $$;
        CREATE TRIGGER engage_consent_automation AFTER INSERT OR UPDATE ON engage_consent
            FOR EACH ROW EXECUTE FUNCTION automation_capture_engage_consent();

        CREATE FUNCTION automation_capture_engage_bounce() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status <> 'bounced' OR (TG_OP = 'UPDATE' AND OLD.status = 'bounced')
               OR NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'engage') THEN
                RETURN NULL;
            END IF;
            INSERT INTO automation_changes (event, record_object, record_id, new)
            SELECT 'email.bounced', 'contacts', c.id::text,
                   jsonb_build_object('address', NEW.address, 'reason', NEW.reason)
            FROM contacts c WHERE c.email_normalized = NEW.address LIMIT 100;
            RETURN NULL;
        END $$;
        CREATE TRIGGER engage_bounce_automation AFTER INSERT OR UPDATE ON engage_address_status
            FOR EACH ROW EXECUTE FUNCTION automation_capture_engage_bounce();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS engage_messages_automation ON engage_messages;
        DROP TRIGGER IF EXISTS engage_outbox_automation ON engage_outbox;
        DROP TRIGGER IF EXISTS engage_consent_automation ON engage_consent;
        DROP TRIGGER IF EXISTS engage_bounce_automation ON engage_address_status;
        DROP FUNCTION IF EXISTS automation_capture_engage_message,
            automation_capture_engage_outbox, automation_capture_engage_consent,
            automation_capture_engage_bounce;
        """
    )
