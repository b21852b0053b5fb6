"""calendars: invitations by e-mail (iMIP, RFC 6047) through engage.

`cal_itip` gets the organizer (`owner_id`: a CANCEL outlives its event row), the engage
outbox row that carries it, and the last sending error (an organizer without a
connected mailbox; retried after an hour). `cal_imip_cursor` is how far each mailbox's
INBOX was read for replies (UIDVALIDITY and the last UID seen). `cal_accounts.server_stamp`
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
        ALTER TABLE cal_itip DROP COLUMN owner_id, DROP COLUMN outbox_id,
            DROP COLUMN send_error, DROP COLUMN attempted_at;
        """
    )
