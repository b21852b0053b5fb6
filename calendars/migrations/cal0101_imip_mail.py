"""calendars: invitations by e-mail (iMIP, RFC 6047) through engage.

`cal_itip` gets the organizer (`owner_id`: a CANCEL outlives its event row), the engage
outbox row that carries it, and the last sending error (an organizer without a
connected mailbox; retried after an hour). `cal_imip_cursor` is how far each mailbox's
INBOX was read for replies (UIDVALIDITY and the last UID seen). Two indexes (and the
stored `cal_events.dirty`) keep an idle sync round's queries off a scan of every event.
`cal_accounts.server_stamp`
is the embedded server's change marker for the account as read before its last sync
REPORT (calendars.server: an idle round compares it instead of asking the server).

Revision ID: cal0101
Revises: cal0100
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "cal0101"
down_revision = "cal0100"
branch_labels = None
depends_on = ("eng0001",)  # engage_mailboxes, engage_outbox


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE cal_itip
            ADD COLUMN owner_id bigint REFERENCES users (id) ON DELETE CASCADE,
            ADD COLUMN outbox_id bigint REFERENCES engage_outbox (id) ON DELETE SET NULL,
            ADD COLUMN send_error text,
            ADD COLUMN attempted_at timestamptz;
        UPDATE cal_itip i SET owner_id = e.owner_id FROM cal_events e WHERE e.id = i.event_id;

        -- the embedded server's change marker as seen before the last sync REPORT
        ALTER TABLE cal_accounts ADD COLUMN server_stamp text;

        -- an idle round at 10,000 events: "anything to push?" and "did a CRM-owned event
        -- lose its source?" by index. `dirty` is stored so the planner has statistics for
        -- it (for local_rev > pushed_rev it guesses a third of the rows and scans).
        ALTER TABLE cal_events ADD COLUMN dirty boolean
            GENERATED ALWAYS AS (local_rev > pushed_rev OR deleted) STORED;
        CREATE INDEX cal_events_dirty_owner ON cal_events (owner_id) WHERE dirty;
        CREATE INDEX cal_events_crm_owned ON cal_events (owner_id)
            WHERE kind <> 'activity' AND NOT deleted;

        CREATE TABLE cal_imip_cursor (
            mailbox_id   bigint PRIMARY KEY REFERENCES engage_mailboxes (id) ON DELETE CASCADE,
            uidvalidity  bigint NOT NULL,
            last_uid     bigint NOT NULL,
            updated_at   timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS cal_imip_cursor;
        ALTER TABLE cal_accounts DROP COLUMN server_stamp;
        DROP INDEX IF EXISTS cal_events_crm_owned;
        ALTER TABLE cal_events DROP COLUMN dirty;
        ALTER TABLE cal_itip DROP COLUMN owner_id, DROP COLUMN outbox_id,
            DROP COLUMN send_error, DROP COLUMN attempted_at;
        """
    )
